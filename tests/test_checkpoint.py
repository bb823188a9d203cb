"""Checkpoints (utils/checkpoint.py): older ones load and resume, a crafted one runs nothing, a malformed field is
one line that names it.

The fixtures in tests/data were saved by scripts.train before checkpoints were loaded with weights_only=True
(see tests/data/README.md).
"""

import gzip
import os
import pickle
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from utils import checkpoint as checkpoints
from utils.errors import UsageError

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
OLD_MODELS = {
    # fixture: (flags it was trained with, beyond its config's procs / frames-per-proc / batch-size / epochs)
    "doorkey_a2c": ["--algo", "a2c", "--env", "MiniGrid-DoorKey-5x5-v0"],
    "pendulum_a2c": ["--algo", "a2c", "--env", "Pendulum-v1"],
    "doorkey_text_ppo": ["--algo", "ppo", "--env", "MiniGrid-DoorKey-5x5-v0", "--text"],
}


def copy_old_model(name, storage):
    """The fixture ``name`` copied to ``storage/name`` (its status.pt unzipped if it is stored gzipped)."""
    model_dir = Path(storage) / name
    model_dir.mkdir(parents=True)
    for path in (DATA / name).iterdir():
        if path.name.endswith(".gz"):
            (model_dir / path.name.removesuffix(".gz")).write_bytes(gzip.decompress(path.read_bytes()))
        else:
            shutil.copyfile(path, model_dir / path.name)
    return model_dir


def raw_status(model_dir):
    return torch.load(Path(model_dir) / "status.pt", map_location="cpu", weights_only=True)


def resume_args(name, model_dir, more_updates=1):
    """Flags that resume fixture ``name`` for ``more_updates`` updates, as it was trained."""
    status = raw_status(model_dir)
    saved = status["config"]["args"]
    frames_per_update = saved["procs"] * saved["frames_per_proc"]
    return [
        *OLD_MODELS[name],
        "--model",
        name,
        "--frames",
        str(status["num_frames"] + more_updates * frames_per_update),
        "--procs",
        str(saved["procs"]),
        "--frames-per-proc",
        str(saved["frames_per_proc"]),
        "--seed",
        str(saved["seed"]),
        "--workers",
        "0",
        "--quiet",
        # --batch-size and --epochs are PPO's: --algo a2c refuses them
        *(
            ["--batch-size", str(saved["batch_size"]), "--epochs", str(saved["epochs"])]
            if "ppo" in OLD_MODELS[name]
            else []
        ),
    ]


@pytest.fixture
def storage(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    threads, handlers = torch.get_num_threads(), {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield tmp_path
    torch.set_num_threads(threads)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def one_line_error(capsys, exit_info, code=2):
    err = capsys.readouterr().err
    assert exit_info.value.code == code, err
    assert "Traceback" not in err and "Warning" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ------------------------------------------------------------------------------------------- older checkpoints
@pytest.mark.parametrize("name", list(OLD_MODELS))
def test_a_checkpoint_saved_by_older_code_loads_with_weights_only(name, tmp_path):
    model_dir = copy_old_model(name, tmp_path)
    checkpoint = checkpoints.load(model_dir)
    status = torch.load(model_dir / "status.pt", weights_only=False)  # the reference: how it was read before
    assert checkpoint.update == status["update"] > 0 and checkpoint.num_frames == status["num_frames"] > 0
    assert checkpoint.model_state.keys() == status["model_state"].keys()
    assert all(torch.equal(checkpoint.model_state[k], v) for k, v in status["model_state"].items())
    assert checkpoint.algo_state["optimizer"]["param_groups"] == status["optimizer_state"]["param_groups"]
    saved = {k: status["config"].get(k, checkpoints.ARCHITECTURE_DEFAULTS[k]) for k in checkpoints.ARCHITECTURE_KEYS}
    assert checkpoint.architecture() == saved and saved["obs"] == "partial"  # saved before --obs: the partial view
    assert checkpoint.preprocessor_state["vocab"] == status.get("vocab")
    assert (checkpoint.preprocessor_state["obs_normalizer"] is not None) == ("obs_normalizer" in status)
    assert (checkpoint.algo_state["reward_scaler"] is not None) == ("reward_scaler" in status)


@pytest.mark.parametrize("name", list(OLD_MODELS))
def test_a_checkpoint_saved_by_older_code_resumes_training_and_evaluates(name, storage, capsys):
    from scripts.evaluate import main as evaluate
    from scripts.train import main as train

    model_dir = copy_old_model(name, storage)
    before = raw_status(model_dir)
    rows_before = (model_dir / "log.csv").read_text().splitlines()
    train(resume_args(name, model_dir, more_updates=1))
    after = raw_status(model_dir)
    assert after["update"] == before["update"] + 1
    rows_after = (model_dir / "log.csv").read_text().splitlines()
    assert rows_after[:-1] == rows_before and rows_after[-1].startswith(f"{after['update']},")
    # What the checkpoint restored was used, not fresh state: the optimizer counts on from the saved steps...
    steps = [s["step"] for s in after["optimizer_state"]["state"].values() if "step" in s]
    saved_steps = [s["step"] for s in before["optimizer_state"]["state"].values() if "step" in s]
    if steps:  # Adam counts its steps; RMSprop too
        assert min(steps) > max(saved_steps)
    # ...the running statistics go on from the saved ones, and the vocabulary is kept.
    for key in ("obs_normalizer", "reward_scaler"):
        if key in before:
            assert after[key]["count"] > before[key]["count"] + 1
    assert after.get("vocab") == before.get("vocab")
    env = OLD_MODELS[name][OLD_MODELS[name].index("--env") + 1]
    result = evaluate(["--env", env, "--model", name, "--episodes", "1", "--procs", "1", "--workers", "0"])
    assert result["episodes"] == 1 and result["frames"] >= 1


def test_a_new_checkpoint_holds_only_the_keys_the_checkpoint_module_names(tmp_path):
    model_dir = copy_old_model("pendulum_a2c", tmp_path)
    checkpoint = checkpoints.load(model_dir)
    checkpoints.save(checkpoint, model_dir)
    status = raw_status(model_dir)  # plain data: it loads with weights_only=True
    named = {getattr(checkpoints, n) for n in ("NUM_FRAMES", "UPDATE", "DURATION", "MODEL", "CONFIG")}
    named |= set(checkpoints.ALGO_KEYS.values()) | set(checkpoints.PREPROCESSOR_KEYS.values())
    assert set(status) <= named
    assert checkpoints.load(model_dir).to_dict().keys() == status.keys()


# ------------------------------------------------------------------------------------------------ crafted pickle
class RunsACommand:
    """Unpickled by a loader that runs code, this calls os.system: the classic malicious checkpoint."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _craft_zip(path, marker):
    torch.save({"model_state": {"w": torch.zeros(1)}, "config": RunsACommand(f"touch {marker}")}, path)


def _craft_legacy(path, marker):
    with open(path, "wb") as f:  # torch's older, non-zip format is a plain pickle stream
        pickle.dump({"model_state": RunsACommand(f"touch {marker}")}, f, protocol=2)


@pytest.mark.parametrize("craft", [_craft_zip, _craft_legacy])
@pytest.mark.parametrize("script", ["evaluate", "train"])
def test_a_crafted_checkpoint_runs_nothing_and_is_one_line(craft, script, storage, capsys):
    model_dir = copy_old_model("pendulum_a2c", storage)
    marker = storage / "MARKER"
    craft(model_dir / "status.pt", marker)
    if script == "train":
        from scripts.train import main

        argv = [*OLD_MODELS["pendulum_a2c"], "--model", "pendulum_a2c", "--workers", "0", "--quiet"]
    else:
        from scripts.evaluate import main

        argv = ["--env", "Pendulum-v1", "--model", "pendulum_a2c", "--episodes", "1"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert not marker.exists(), "loading the checkpoint ran its command"
    line = one_line_error(capsys, exit_info)
    assert "refused" in line and "may be unsafe" in line and "status.pt" in line, line
    if craft is _craft_zip:
        assert "posix.system" in line or "os.system" in line, line


def test_a_crafted_checkpoint_in_a_real_process_is_one_line(tmp_path):
    model_dir = copy_old_model("doorkey_a2c", tmp_path)
    marker = tmp_path / "MARKER"
    _craft_zip(model_dir / "status.pt", marker)
    result = subprocess.run(
        [sys.executable, "-m", "scripts.visualize", "--env", "MiniGrid-DoorKey-5x5-v0", "--model", "doorkey_a2c"]
        + ["--gif", str(tmp_path / "x.gif")],
        cwd=REPO,
        env={**os.environ, "TORCH_RL_STORAGE": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not marker.exists() and not (tmp_path / "x.gif").exists()
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: refused to load"), result.stderr


# ------------------------------------------------------------------------------------------------ malformed fields
def _set(key, value):
    def damage(status):
        status[key] = value

    return damage


def _set_config(key, value):
    def damage(status):
        status["config"][key] = value

    return damage


def _drop_param_groups(status):
    del status["optimizer_state"]["param_groups"]


def _extra_param(status):
    status["optimizer_state"]["param_groups"][0]["params"].append(999)


def _model_state_of_lists(status):
    status["model_state"] = {k: v.tolist() for k, v in status["model_state"].items()}


def _wrong_normalizer_shape(status):
    status["obs_normalizer"] = {"mean": torch.zeros(5), "var": torch.ones(5), "count": 3.0}


def _poison(*path, value=float("nan")):
    """Damage: sets ``value`` into the tensor (its first element) or number at ``path`` in the status dict; a
    path item None stands for the first key of a dict."""

    def damage(status):
        parent = status
        for key in path[:-1]:
            parent = parent[next(iter(parent)) if key is None else key]
        last = next(iter(parent)) if path[-1] is None else path[-1]
        if isinstance(parent[last], torch.Tensor):
            parent[last].view(-1)[0] = value
        else:
            parent[last] = value

    return damage


MALFORMED = {
    # case: (damage to the status dict, words of the one-line error)
    "status not a dict": (lambda status: [status], ["not a torch_rl model"]),
    "no model_state": (
        lambda status: {k: v for k, v in status.items() if k != "model_state"},
        ["not a torch_rl model"],
    ),
    "config not a dict": (_set("config", [1, 2]), ["config", "not a dict"]),
    "config use_memory not a bool": (_set_config("use_memory", "yes"), ["config['use_memory']"]),
    "config image_encoding unknown": (_set_config("image_encoding", "bits"), ["config['image_encoding']"]),
    "config algo unknown": (_set_config("algo", 3), ["config['algo']"]),
    "model_state not a dict": (_set("model_state", [1, 2, 3]), ["model_state", "not a dict"]),
    "model_state of lists": (_model_state_of_lists, ["model_state", "not a dict of named tensors"]),
    "optimizer_state not a dict": (_set("optimizer_state", "adam"), ["optimizer_state", "malformed"]),
    "optimizer_state without param_groups": (_drop_param_groups, ["optimizer_state", "malformed"]),
    "optimizer_state of another model": (_extra_param, ["optimizer_state", "do not fit"]),
    "num_frames negative": (_set("num_frames", -5), ["num_frames", "-5"]),
    "update a string": (_set("update", "7"), ["update", "'7'"]),
    "update a bool": (_set("update", True), ["update"]),
    "duration nan": (_set("duration", float("nan")), ["duration", "nan"]),
    "vocab not a dict": (_set("vocab", ["the", "key"]), ["vocab", "not a dict"]),
    "obs_normalizer malformed": (_set("obs_normalizer", {"mean": 1.0}), ["obs_normalizer", "malformed"]),
    "obs_normalizer of another shape": (_wrong_normalizer_shape, ["obs_normalizer", "shape"]),
    "reward_scaler malformed": (_set("reward_scaler", torch.zeros(3)), ["reward_scaler", "malformed"]),
    "lr_scheduler malformed": (_set("lr_scheduler", {"last_epoch": -3, "base_lrs": [0.1]}), ["lr_scheduler"]),
    "lr_scheduler base_lrs not numbers": (_set("lr_scheduler", {"last_epoch": 2, "base_lrs": ["x"]}), ["lr_scheduler"]),
    "exploration_bonus not plain data": (_set("exploration_bonus", {"predictor": {3.5: 1}}), ["exploration_bonus"]),
    "exploration_bonus not a dict": (_set("exploration_bonus", "rnd"), ["exploration_bonus", "malformed"]),
    "best_eval_return not a number": (_set("best_eval_return", "0.9"), ["best_eval_return", "'0.9'"]),
    # values, not only types (issue 32): every tensor finite, every variance >= 0
    "model_state NaN": (_poison("model_state", "log_std"), ["model_state['log_std'] holds NaN or infinite values"]),
    "model_state inf": (
        _poison("model_state", "actor.0.weight", value=float("inf")),
        ["model_state['actor.0.weight'] holds NaN or infinite values"],
    ),
    "optimizer_state NaN": (
        _poison("optimizer_state", "state", None, "square_avg"),
        ["optimizer_state['state'][", "['square_avg'] holds NaN"],
    ),
    "optimizer_state lr inf": (
        _poison("optimizer_state", "param_groups", 0, "lr", value=float("inf")),
        ["optimizer_state['param_groups'][0]['lr'] holds NaN"],
    ),
    "obs_normalizer NaN mean": (_poison("obs_normalizer", "mean"), ["obs_normalizer['mean'] holds NaN"]),
    "obs_normalizer negative var": (
        _poison("obs_normalizer", "var", value=-1.0),
        ["obs_normalizer['var'] is negative"],
    ),
    "reward_scaler inf var": (
        _poison("reward_scaler", "var", value=float("inf")),
        ["reward_scaler['var'] holds NaN or infinite values"],
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_field_is_one_line_naming_it_in_train_and_evaluate(case, storage, capsys):
    from scripts.evaluate import main as evaluate
    from scripts.train import main as train
    from scripts.visualize import main as visualize

    damage, fragments = MALFORMED[case]
    model_dir = copy_old_model("pendulum_a2c", storage)
    runs = {
        "train": (train, resume_args("pendulum_a2c", model_dir)),
        "evaluate": (evaluate, ["--env", "Pendulum-v1", "--model", "pendulum_a2c", "--episodes", "1", "--argmax"]),
        "visualize": (visualize, ["--env", "Pendulum-v1", "--model", "pendulum_a2c", "--gif", str(storage / "a.gif")]),
    }
    status = raw_status(model_dir)
    damaged = damage(status)  # changes status, or returns what replaces it
    torch.save(status if damaged is None else damaged, model_dir / "status.pt")
    before = (model_dir / "status.pt").read_bytes(), (model_dir / "log.csv").read_bytes()
    for script, (main, argv) in runs.items():
        if script != "train" and case == "optimizer_state of another model":
            continue  # evaluation does not use the optimizer
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        line = one_line_error(capsys, exit_info)
        for fragment in fragments:
            assert fragment in line, (script, fragment, line)
    assert ((model_dir / "status.pt").read_bytes(), (model_dir / "log.csv").read_bytes()) == before
    assert not (storage / "a.gif").exists()


# The flags saved in config["args"] that a resumed model keeps (utils.resume.KEPT_SETTINGS) meet the command line's
# checks: case: ({flag: saved value}, words of the one-line error).
SAVED_FLAGS = {
    "procs -5": ({"procs": -5}, ["procs must be an integer at least 1, got -5", "give --procs"]),
    "lr nan": ({"lr": float("nan")}, ["lr must be a finite number", "got nan", "give --lr"]),
    "lr 1e39": ({"lr": 1e39}, ["lr must be a finite number more than 0 and at most 1", "got 1e+39"]),
    "frames_per_proc 'lots'": ({"frames_per_proc": "lots"}, ["frames_per_proc must be an integer", "got 'lots'"]),
    "epochs 0": ({"epochs": 0}, ["epochs must be an integer from 1 to 1000, got 0"]),
    "eval_interval -3": ({"eval_interval": -3}, ["eval_interval must be an integer at least 0, got -3"]),
    "discount 2.0": ({"discount": 2.0}, ["discount must be a finite number from 0 to 1, got 2.0"]),
    "text 'yes'": ({"text": "yes"}, ["text must be true or false, got 'yes'"]),
    "explore 'curiosity'": ({"explore": "curiosity"}, ["explore must be one of none, rnd", "got 'curiosity'"]),
    "eval_env 3": ({"eval_env": 3, "eval_interval": 1}, ["eval_env must be one of same, real, got 3"]),
    "recipe not a table": ({"recipe": "fast"}, ["recipe is not a table of flags"]),
    "recipe with a bad value": ({"recipe": {"lr": -1.0}}, ["recipe: lr must be a finite number more than 0"]),
}


@pytest.mark.parametrize("case", list(SAVED_FLAGS))
def test_a_saved_flag_out_of_range_is_one_line_naming_it_on_resume(case, storage, capsys):
    from scripts.train import main as train

    saved, fragments = SAVED_FLAGS[case]
    model_dir = copy_old_model("pendulum_a2c", storage)
    status = raw_status(model_dir)
    status["config"]["args"].update(saved)
    torch.save(status, model_dir / "status.pt")
    before = (model_dir / "status.pt").read_bytes(), (model_dir / "log.csv").read_bytes()
    argv = [*OLD_MODELS["pendulum_a2c"], "--model", "pendulum_a2c", "--frames", "1000", "--workers", "0", "--quiet"]
    with pytest.raises(SystemExit) as exit_info:
        train(argv)
    line = one_line_error(capsys, exit_info)
    assert f"the flags saved in {model_dir / 'status.pt'}" in line, line
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert ((model_dir / "status.pt").read_bytes(), (model_dir / "log.csv").read_bytes()) == before


def test_load_names_the_field_as_a_usage_error_without_the_scripts(tmp_path):
    model_dir = copy_old_model("doorkey_a2c", tmp_path)
    status = raw_status(model_dir)
    status["config"] = "ppo"
    torch.save(status, model_dir / "status.pt")
    with pytest.raises(UsageError, match=r"its config is not a dict \(got 'ppo'\)"):
        checkpoints.load(model_dir)
