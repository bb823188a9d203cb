"""The starter scripts end to end: train -> evaluate -> visualize --gif -> plot, resume, memory/text and
continuous-action models, and the one-line errors of user mistakes. Tiny budgets: the whole file takes ~40 s."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
DOORKEY = "MiniGrid-DoorKey-5x5-v0"
TINY_PPO = ["--algo", "ppo", "--procs", "4", "--frames-per-proc", "32", "--quiet"]
DOCUMENTED_JSON_KEYS = {
    "env",
    "model",
    "argmax",
    "seed",
    "procs",
    "episodes",
    "frames",
    "fps",
    "duration",
    "return_mean",
    "return_std",
    "return_min",
    "return_max",
    "num_frames_mean",
    "num_frames_std",
    "num_frames_min",
    "num_frames_max",
    "success_rate",
    "returns",
    "num_frames",
}


def run_script(name, *args, storage, check=True, drop_display=False):
    """``python -m scripts.NAME ARGS`` from the repo root, with TORCH_RL_STORAGE=storage."""
    env = dict(os.environ, TORCH_RL_STORAGE=str(storage))
    if drop_display:
        env.pop("DISPLAY", None)
        env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run(
        [sys.executable, "-m", f"scripts.{name}", *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if check:
        assert proc.returncode == 0, f"scripts.{name} {args} failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def load_status(model_dir):
    return torch.load(Path(model_dir) / "status.pt", map_location="cpu", weights_only=False)


def assert_one_line_error(stderr, *fragments):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def doorkey(tmp_path_factory):
    """A PPO model trained for 512 frames on DoorKey-5x5 (4 updates of 4 envs x 32 frames): the storage folder."""
    storage = tmp_path_factory.mktemp("storage")
    run_script("train", "--env", DOORKEY, "--model", "dk", "--frames", 512, *TINY_PPO, storage=storage)
    return storage


@pytest.fixture(scope="module")
def memory_text(tmp_path_factory):
    """A PPO model with an LSTM memory (--recurrence 4) and a mission GRU (--text)."""
    storage = tmp_path_factory.mktemp("storage")
    run_script(
        "train",
        "--env",
        DOORKEY,
        "--model",
        "mem",
        "--frames",
        256,
        "--recurrence",
        4,
        "--text",
        *TINY_PPO,
        storage=storage,
    )
    return storage


def copy_model(storage, name, tmp_path):
    target = tmp_path / "storage"
    shutil.copytree(Path(storage) / name, target / name)
    return target


# --- train: CSV log and resume -----------------------------------------------------------------------------


def test_train_writes_the_documented_csv_header_and_a_checkpoint(doorkey):
    from utils.logs import CSV_FIELDS

    header, rows = read_csv(doorkey / "dk" / "log.csv")
    assert header == CSV_FIELDS
    assert [int(r[header.index("frames")]) for r in rows] == [128, 256, 384, 512]
    status = load_status(doorkey / "dk")
    assert status["num_frames"] == 512 and status["update"] == 4
    assert status["config"]["env"] == DOORKEY


def test_resume_continues_the_frame_count(doorkey, tmp_path, monkeypatch):
    storage = copy_model(doorkey, "dk", tmp_path)
    monkeypatch.setenv("TORCH_RL_STORAGE", str(storage))
    run_script("train", "--env", DOORKEY, "--model", "dk", "--frames", 1024, *TINY_PPO, storage=storage)
    header, rows = read_csv(storage / "dk" / "log.csv")
    frames = [int(r[header.index("frames")]) for r in rows]
    updates = [int(r[header.index("update")]) for r in rows]
    assert frames == list(range(128, 1025, 128))  # 512 frames saved, then 4 more updates from there
    assert updates == list(range(1, 9))
    status = load_status(storage / "dk")
    assert status["num_frames"] == 1024 and status["update"] == 8


# --- evaluate ----------------------------------------------------------------------------------------------


def test_evaluate_writes_json_with_the_documented_keys(doorkey, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(doorkey))
    out = tmp_path / "eval.json"
    proc = run_script(
        "evaluate", "--env", DOORKEY, "--model", "dk", "--episodes", 6, "--procs", 4, "--json", out, storage=doorkey
    )
    result = json.loads(out.read_text())
    assert set(result) == DOCUMENTED_JSON_KEYS
    assert result["episodes"] == 6 and len(result["returns"]) == 6 and len(result["num_frames"]) == 6
    assert result["procs"] == 4 and result["env"] == DOORKEY and result["model"] == "dk"
    assert result["frames"] == sum(result["num_frames"]) > 0
    assert all(1 <= n <= 250 for n in result["num_frames"])  # DoorKey-5x5 truncates at 250 steps
    assert result["num_frames_max"] == max(result["num_frames"])
    assert result["return_mean"] == pytest.approx(np.mean(result["returns"]))
    assert result["success_rate"] == pytest.approx(np.mean(np.array(result["returns"]) > 0))
    assert result["fps"] > 0 and result["duration"] > 0
    assert "success rate" in proc.stdout and "F 0" not in proc.stdout


def test_evaluate_json_to_stdout_prints_only_json(doorkey, monkeypatch, capsys):
    from scripts import evaluate

    monkeypatch.setenv("TORCH_RL_STORAGE", str(doorkey))
    evaluate.main(
        [
            "--env",
            DOORKEY,
            "--model",
            "dk",
            "--episodes",
            "3",
            "--procs",
            "2",
            "--workers",
            "0",
            "--argmax",
            "--json",
            "-",
        ]
    )
    result = json.loads(capsys.readouterr().out)  # fails if anything else was printed
    assert result["episodes"] == 3 and result["argmax"] is True and result["procs"] == 2


class FakeEnvBatch:
    """Env 0's episodes last 1 step, env 1's 10 steps; reward 1 on each episode's last step."""

    num_envs = 2
    lengths = (1, 10)

    def __init__(self):
        self.t = np.zeros(2, dtype=int)

    def reset(self, seed=None):
        return np.zeros((2, 1), dtype=np.float32)

    def step(self, actions):
        self.t += 1
        done = self.t >= np.array(self.lengths)
        self.t[done] = 0
        return np.zeros((2, 1), np.float32), done.astype(np.float32), done, np.zeros(2, bool), {}


class FakeAgent:
    def __init__(self):
        self.feedbacks = []

    def get_actions(self, obss):
        return torch.zeros(len(obss), dtype=torch.long)

    def analyze_feedbacks(self, dones):
        self.feedbacks.append(np.array(dones))


def test_evaluate_counts_episodes_per_env_not_the_first_to_finish():
    import gymnasium as gym

    from scripts.evaluate import run_episodes

    agent = FakeAgent()
    returns, lengths, stepped = run_episodes(FakeEnvBatch(), agent, 10, gym.spaces.Discrete(2))
    assert len(returns) == 10 and returns == [1.0] * 10
    # "The first 10 to finish" would be nine or ten 1-step episodes; each env's share gives five of each.
    assert sorted(lengths) == [1] * 5 + [10] * 5
    assert stepped == 2 * 50
    assert sum(f.sum() for f in agent.feedbacks) == 50 + 5  # every end of episode reached the agent


def test_evaluate_with_more_episodes_repeats_the_shorter_runs_episodes():
    """Why a longer run with the same seed is no independent check of a shorter one: each env's first episodes are
    the same episodes (same layouts, same sampled actions)."""
    import gymnasium as gym

    from scripts.evaluate import run_episodes
    from torch_rl.vec_env import VectorEnvBatch
    from utils.env import make_batched_env

    class RandomAgent(FakeAgent):
        def get_actions(self, obss):
            return torch.randint(0, 3, (len(obss["direction"]),))

    per_env = {}
    for episodes in (8, 12):
        torch.manual_seed(0)
        env_batch = VectorEnvBatch(make_batched_env("MiniGrid-Empty-5x5-v0", 4, seed=0))
        returns, lengths, _ = run_episodes(env_batch, RandomAgent(), episodes, gym.spaces.Discrete(3))
        per_env[episodes] = [lengths[i * episodes // 4 : (i + 1) * episodes // 4] for i in range(4)]
    assert [env[:2] for env in per_env[12]] == per_env[8]
    assert len({length for env in per_env[12] for length in env}) > 1  # episodes that differ: the check means something


# --- visualize ---------------------------------------------------------------------------------------------


def test_visualize_writes_an_animated_gif_headless(doorkey, tmp_path):
    import imageio.v3 as iio

    gif = tmp_path / "dk.gif"
    proc = run_script(
        "visualize",
        "--env",
        DOORKEY,
        "--model",
        "dk",
        "--gif",
        gif,
        "--pause",
        0.05,
        storage=doorkey,
        drop_display=True,
    )
    assert gif.read_bytes()[:4] == b"GIF8"
    frames = iio.imread(gif, index=None)
    # Sampled actions move the agent (GIF writers merge identical consecutive frames, e.g. of a stuck agent).
    assert frames.ndim == 4 and frames.shape[0] > 1 and frames.shape[-1] == 3
    assert "episode 1: return" in proc.stdout


def test_visualize_without_display_or_gif_is_a_usage_error(doorkey, monkeypatch, capsys):
    from scripts import visualize

    monkeypatch.setenv("TORCH_RL_STORAGE", str(doorkey))
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        visualize.main(["--env", DOORKEY, "--model", "dk"])
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "--gif")


# --- plot --------------------------------------------------------------------------------------------------


def test_plot_writes_a_png(doorkey, tmp_path, monkeypatch, capsys):
    import imageio.v3 as iio

    from scripts import plot

    storage = copy_model(doorkey, "dk", tmp_path)
    shutil.copytree(storage / "dk", storage / "dk2")
    monkeypatch.setenv("TORCH_RL_STORAGE", str(storage))
    plot.main(["--model", "dk", "dk2", "--smooth", "2"])
    png = storage / "plot.png"  # the default output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = iio.imread(png)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert "dk (4 rows), dk2 (4 rows)" in capsys.readouterr().out

    with pytest.raises(SystemExit) as exit_info:
        plot.main(["--model", "dk", "missing"])
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, "missing")


def test_rolling_mean_ignores_nan():
    from utils.plotting import rolling_mean

    smoothed = rolling_mean([np.nan, 1.0, 3.0, np.nan, 5.0], 2)
    assert np.isnan(smoothed[0])
    assert smoothed[1:].tolist() == [1.0, 2.0, 3.0, 5.0]


# --- memory and text, continuous actions -------------------------------------------------------------------


def test_memory_and_text_model_trains_saves_and_evaluates(memory_text, monkeypatch, capsys):
    from scripts import evaluate

    status = load_status(memory_text / "mem")
    assert status["config"]["use_memory"] is True and status["config"]["use_text"] is True
    assert status["num_frames"] == 256
    assert len(status["vocab"]) > 3  # the mission's words
    assert any(k.startswith("memory_rnn.") for k in status["model_state"])
    assert any(k.startswith("text_rnn.") for k in status["model_state"])

    monkeypatch.setenv("TORCH_RL_STORAGE", str(memory_text))
    result = evaluate.main(
        ["--env", DOORKEY, "--model", "mem", "--episodes", "3", "--procs", "3", "--workers", "0", "--json", "-"]
    )
    assert result["episodes"] == 3 and json.loads(capsys.readouterr().out)["episodes"] == 3


def test_agent_forgets_the_memory_of_finished_episodes(memory_text):
    from utils.agent import Agent
    from utils.env import make_env

    env = make_env(DOORKEY, seed=0)
    obs, _ = env.reset(seed=0)
    agent = Agent(env.observation_space, env.action_space, str(memory_text / "mem"), num_envs=2)
    assert agent.model.recurrent
    agent.get_actions([obs, obs])
    assert agent.memories.abs().sum(dim=1).min() > 0
    agent.analyze_feedbacks(np.array([True, False]))
    assert agent.memories[0].abs().sum() == 0 and agent.memories[1].abs().sum() > 0


def test_pendulum_a2c_trains_and_evaluates(tmp_path, monkeypatch):
    storage = tmp_path / "storage"
    monkeypatch.setenv("TORCH_RL_STORAGE", str(storage))
    run_script(
        "train",
        "--algo",
        "a2c",
        "--env",
        "Pendulum-v1",
        "--model",
        "pend",
        "--procs",
        4,
        "--frames",
        200,
        "--quiet",
        storage=storage,
    )
    assert load_status(storage / "pend")["num_frames"] == 200
    proc = run_script(
        "evaluate",
        "--env",
        "Pendulum-v1",
        "--model",
        "pend",
        "--episodes",
        3,
        "--procs",
        3,
        "--json",
        "-",
        storage=storage,
    )
    result = json.loads(proc.stdout)
    assert result["episodes"] == 3 and result["num_frames"] == [200, 200, 200]  # Pendulum truncates at 200
    assert all(r < 0 for r in result["returns"]) and result["success_rate"] == 0.0


# --- user mistakes and --help ------------------------------------------------------------------------------


def test_evaluate_missing_model_is_one_line_exit_2(tmp_path):
    proc = run_script("evaluate", "--env", DOORKEY, "--model", "nope", storage=tmp_path, check=False)
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "no trained model", "nope")
    assert proc.stdout == ""


@pytest.mark.parametrize(
    "script, args, fragment",
    [
        ("evaluate", ["--env", "MiniGrid-DoorKey-5x5", "--model", "dk"], "unknown environment"),
        ("evaluate", ["--env", "Pendulum-v1", "--model", "dk"], "was made for MiniGrid-DoorKey-5x5-v0"),
        ("evaluate", ["--env", DOORKEY, "--model", "dk", "--episodes", "0"], "--episodes"),
        ("evaluate", ["--env", DOORKEY, "--model", "dk", "--episodes", "many"], "--episodes"),
        ("visualize", ["--env", DOORKEY, "--model", "nope", "--gif", "x.gif"], "no trained model"),
        ("visualize", ["--env", "Pendulum-v1", "--model", "dk", "--gif", "x.gif"], "was made for"),
    ],
)
def test_user_mistakes_are_one_line_exit_2(doorkey, monkeypatch, capsys, tmp_path, script, args, fragment):
    import importlib

    monkeypatch.setenv("TORCH_RL_STORAGE", str(doorkey))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"scripts.{script}").main(args)
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, fragment)
    assert not (tmp_path / "x.gif").exists()


@pytest.mark.parametrize("script", ["train", "evaluate", "visualize", "plot"])
def test_help_exits_0(script, capsys):
    import importlib

    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"scripts.{script}").main(["--help"])
    assert exit_info.value.code == 0
    assert f"python -m scripts.{script}" in capsys.readouterr().out


def test_resume_applies_a_new_learning_rate_instead_of_the_saved_one(tmp_path, monkeypatch):
    import torch

    from scripts import train

    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    common = [
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "--model",
        "lr",
        "--procs",
        "2",
        "--frames-per-proc",
        "16",
        "--batch-size",
        "16",
        "--quiet",
        "--save-interval",
        "1",
    ]
    train.main(common + ["--frames", "32", "--lr", "0.001"])
    train.main(common + ["--frames", "64", "--lr", "0.0001"])
    status = torch.load(tmp_path / "lr" / "status.pt", weights_only=False)
    assert status["optimizer_state"]["param_groups"][0]["lr"] == 0.0001
