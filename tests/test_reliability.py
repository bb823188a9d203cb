"""Reliability: bad input gets one clear line, crashes lose no model, training never hangs.

Budgets are tiny (2 envs, 16 frames per env and update). The train subprocesses find the test envs (tests/envs.py,
registered by tests/conftest.py) by the ``module:id`` form of an env id
(``--env tests.conftest:TorchRLTest-Raising-v0``).
"""

import csv
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import torch_rl
from tests.test_checkpoint import copy_old_model, resume_args

REPO = Path(__file__).resolve().parents[1]
TINY = ["--procs", "2", "--frames-per-proc", "16", "--batch-size", "16", "--epochs", "1"]
FRAMES_PER_UPDATE = 2 * 16
TINY_A2C = TINY[:4]  # --batch-size and --epochs are PPO's: --algo a2c refuses them


# ----------------------------------------------------------------------------------------------------- helpers
def train_command(*args):
    return [sys.executable, "-m", "scripts.train", *args]


def train_env(storage):
    return {**os.environ, "TORCH_RL_STORAGE": str(storage), "PYTHONUNBUFFERED": "1"}


def run_train(storage, *args, timeout=120):
    return subprocess.run(
        train_command(*args), cwd=REPO, env=train_env(storage), capture_output=True, text=True, timeout=timeout
    )


def start_train(storage, *args):
    """A training process in a session of its own, so that a signal can go to its whole process group."""
    return subprocess.Popen(
        train_command(*args),
        cwd=REPO,
        env=train_env(storage),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def snapshot(folder):
    """Every file under ``folder``: bytes and mtime, to compare before and after."""
    folder = Path(folder)
    return {
        str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def assert_one_line_error(stderr, code, returncode, *fragments):
    assert returncode == code, stderr
    assert "Traceback" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def load_status(model_dir):
    return torch.load(Path(model_dir) / "status.pt", map_location="cpu", weights_only=False)


def csv_rows(model_dir):
    with open(Path(model_dir) / "log.csv", newline="") as f:
        return list(csv.reader(f))


def checkpoint_id(model_dir):
    try:
        st = os.stat(Path(model_dir) / "status.pt")
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns


def wait_for_new_checkpoint(process, model_dir, previous, timeout=60):
    """Waits until a save of ``process`` replaces checkpoint ``previous``; False if the process ended first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if checkpoint_id(model_dir) not in (None, previous):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    raise AssertionError(f"no checkpoint in {model_dir} after {timeout} s")


def child_pids(pid):
    """The pids of the live (not zombie) children of ``pid``, from /proc."""
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[1]) == pid:
            children.append(int(entry))
    return children


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_gone(pids, timeout=10):
    deadline = time.time() + timeout
    while any(alive(p) for p in pids) and time.time() < deadline:
        time.sleep(0.05)
    left = [p for p in pids if alive(p)]
    for pid in left:  # clean up, then fail
        os.kill(pid, signal.SIGKILL)
    assert not left, f"worker processes {left} outlived their trainer"


@pytest.fixture
def restore_process_state():
    """scripts.train.main run in this process sets torch's threads and may install a SIGTERM handler."""
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGTERM)
    yield
    torch.set_num_threads(threads)
    signal.signal(signal.SIGTERM, handler)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model folder trained for 2 PPO updates on CartPole (no recurrence, no text)."""
    from scripts.train import main

    storage = tmp_path_factory.mktemp("storage")
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGTERM)
    environ = os.environ.copy()
    try:
        os.environ["TORCH_RL_STORAGE"] = str(storage)
        main(
            [
                "--algo",
                "ppo",
                "--env",
                "CartPole-v1",
                "--model",
                "cartpole",
                "--frames",
                "64",
                "--workers",
                "0",
                "--quiet",
                *TINY,
            ]
        )
    finally:
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
        signal.signal(signal.SIGTERM, handler)
    assert load_status(storage / "cartpole")["update"] == 2
    return storage, storage / "cartpole"


# --------------------------------------------------------------------------------------------------- bad input
def _truncate_checkpoint(model_dir):
    path = model_dir / "status.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage_checkpoint(model_dir):
    (model_dir / "status.pt").write_bytes(bytes(random.Random(0).randrange(256) for _ in range(5000)))


def _not_a_checkpoint(model_dir):
    torch.save({"hello": 1}, model_dir / "status.pt")


BASE = ["--algo", "ppo", "--env", "CartPole-v1", "--model", "cartpole", "--frames", "128", "--workers", "0", *TINY]

BAD_INPUTS = {
    # name: (arguments replacing those of BASE, damage done to a copy of the model folder, words of the error)
    "unknown env": (["--env", "CartPol-v1"], None, ["unknown environment", "CartPole-v1"]),
    "unknown env module": (["--env", "no_such_module:CartPole-v1"], None, ["cannot import"]),
    "unknown algo": (["--algo", "dqn"], None, ["--algo", "dqn", "--help"]),
    "unknown flag": (["--learning-rate", "3"], None, ["--learning-rate", "--help"]),
    "not an int": (["--procs", "two"], None, ["--procs", "two"]),
    "recurrence vs frames-per-proc": (["--recurrence", "3"], None, ["--recurrence 3", "--frames-per-proc 16"]),
    "recurrence vs batch-size": (
        ["--recurrence", "8", "--batch-size", "12"],
        None,
        ["--recurrence 8", "--batch-size 12"],
    ),
    "zero procs": (["--procs", "0"], None, ["--procs", "at least 1", "0"]),
    "negative procs": (["--procs", "-3"], None, ["--procs", "at least 1", "-3"]),
    "negative workers": (["--workers", "-1"], None, ["--workers", "-1"]),
    "zero threads": (["--threads", "0"], None, ["--threads"]),
    "bad device": (["--device", "gpu7"], None, ["--device", "gpu7"]),
    "nan lr": (["--lr", "nan"], None, ["--lr"]),
    "resumed with recurrence": (["--recurrence", "4"], None, ["other settings", "--recurrence", "--model"]),
    "resumed with another env": (["--env", "Acrobot-v1"], None, ["other settings", "CartPole-v1", "Acrobot-v1"]),
    "resumed with another algo": (["--algo", "a2c"], None, ["other settings", "--algo"]),
    "resumed with text": (["--text"], None, ["other settings", "--text"]),
    "truncated checkpoint": ([], _truncate_checkpoint, ["corrupt or truncated", "status.pt"]),
    "garbage checkpoint": ([], _garbage_checkpoint, ["corrupt or truncated", "status.pt"]),
    "not a checkpoint": ([], _not_a_checkpoint, ["not a torch_rl model"]),
}


def _with(args, changes, drop=()):
    """``args`` with the flags of ``changes`` set (their values replaced, or added) and the flags ``drop`` (those
    taking a value) removed."""
    args = list(args)
    for flag in drop:
        j = args.index(flag)
        del args[j : j + 2]
    i = 0
    while i < len(changes):
        flag = changes[i]
        value = changes[i + 1] if i + 1 < len(changes) and not changes[i + 1].startswith("--") else None
        if flag in args:
            j = args.index(flag)
            if value is not None:
                args[j + 1] = value
        else:
            args += [flag] + ([value] if value is not None else [])
        i += 2 if value is not None else 1
    return args


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_and_leaves_the_model_folder_alone(
    case, trained, tmp_path, monkeypatch, capsys, restore_process_state
):
    from scripts.train import main

    changes, damage, fragments = BAD_INPUTS[case]
    storage, model_dir = tmp_path / "storage", tmp_path / "storage" / "cartpole"
    model_dir.mkdir(parents=True)
    for path in trained[1].iterdir():
        (model_dir / path.name).write_bytes(path.read_bytes())
    if damage is not None:
        damage(model_dir)
    before = snapshot(storage)
    monkeypatch.setenv("TORCH_RL_STORAGE", str(storage))
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(_with(BASE, changes, drop=("--batch-size", "--epochs") if "a2c" in changes else ()))
    assert_one_line_error(capsys.readouterr().err, 2, exit_info.value.code, *fragments)
    assert snapshot(storage) == before
    assert sorted(os.listdir(storage)) == ["cartpole"]


def test_bad_input_in_a_real_process_is_one_line_without_traceback(trained):
    storage, model_dir = trained
    before = snapshot(storage)
    result = run_train(storage, *_with(BASE, ["--recurrence", "4"]))
    assert_one_line_error(result.stderr, 2, result.returncode, "other settings", "--recurrence")
    assert snapshot(storage) == before


def test_text_on_an_env_without_a_mission_creates_no_model_folder(tmp_path, monkeypatch, capsys, restore_process_state):
    from scripts.train import main

    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(_with(BASE, ["--model", "new", "--text"]))
    assert_one_line_error(capsys.readouterr().err, 2, exit_info.value.code, "--text", "mission", "CartPole-v1")
    assert os.listdir(tmp_path) == []


def test_storage_that_cannot_be_written_is_a_usage_error(tmp_path, monkeypatch, capsys, restore_process_state):
    from scripts.train import main

    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    monkeypatch.setenv("TORCH_RL_STORAGE", str(a_file / "storage"))
    with pytest.raises(SystemExit) as exit_info:
        main(_with(BASE, ["--model", "new"]))
    assert_one_line_error(capsys.readouterr().err, 2, exit_info.value.code, "cannot write", "TORCH_RL_STORAGE")
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder anyway")
def test_read_only_storage_is_a_usage_error(tmp_path, monkeypatch, capsys, restore_process_state):
    from scripts.train import main

    tmp_path.chmod(0o555)
    try:
        monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
        with pytest.raises(SystemExit) as exit_info:
            main(_with(BASE, ["--model", "new"]))
        assert_one_line_error(capsys.readouterr().err, 2, exit_info.value.code, "cannot write")
    finally:
        tmp_path.chmod(0o755)


def test_a_stale_csv_tail_and_temp_files_are_cleaned_on_resume(trained, tmp_path):
    """A crash between logging update U and saving it leaves a row that the resumed run would log again."""
    from utils.storage import remove_temp_files, trim_csv_log

    model_dir = tmp_path / "m"
    model_dir.mkdir()
    rows = csv_rows(trained[1])
    assert [r[0] for r in rows] == ["update", "1", "2"]
    text = (trained[1] / "log.csv").read_text()
    (model_dir / "log.csv").write_text(text + text.splitlines(keepends=True)[2].replace("2,", "3,", 1) + "4,12")
    (model_dir / ".tmp-abc.tmp").write_bytes(b"half a checkpoint")
    trim_csv_log(model_dir, 2)
    remove_temp_files(model_dir)
    assert (model_dir / "log.csv").read_text() == text
    assert os.listdir(model_dir) == ["log.csv"]
    trim_csv_log(model_dir, 2)  # nothing to drop: the file is left as it is
    assert (model_dir / "log.csv").read_text() == text


# ------------------------------------------------------------------------------------------------ crash safety
def test_kill_9_at_random_moments_never_loses_the_model_and_resuming_continues(tmp_path):
    # The killed runs have a budget no machine reaches in the test's time, so each is killed mid-run however fast
    # the machine is (a budget of a few dozen updates was finished before the second kill on a quiet machine); the
    # last run, resumed with a budget a few updates past the last save, must then finish it.
    rng = random.Random(0)
    args = [
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "--model",
        "m",
        "--save-interval",
        "1",
        "--workers",
        "2",
        "--quiet",
        *TINY,
    ]
    endless = ["--frames", str(10**9)]
    model_dir = tmp_path / "m"
    saved_updates = []
    for _ in range(3):
        process = start_train(tmp_path, *args, *endless)
        try:
            assert wait_for_new_checkpoint(process, model_dir, checkpoint_id(model_dir)), process.stderr.read()
            time.sleep(rng.uniform(0.0, 0.3))
            workers = child_pids(process.pid)
            process.kill()
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
            process.stderr.close()
        assert process.returncode == -signal.SIGKILL
        assert_gone(workers)
        status = load_status(model_dir)
        assert status["num_frames"] == status["update"] * FRAMES_PER_UPDATE
        assert all(torch.isfinite(v).all() for v in status["model_state"].values())
        assert not saved_updates or status["update"] > saved_updates[-1]
        saved_updates.append(status["update"])
    frames = (saved_updates[-1] + 3) * FRAMES_PER_UPDATE
    result = run_train(tmp_path, *args, "--frames", str(frames))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    status = load_status(model_dir)
    assert status["num_frames"] == frames and status["update"] == frames // FRAMES_PER_UPDATE
    log = (model_dir / "log.txt").read_text()
    for update in saved_updates:
        assert f"resuming at update {update} " in log
    rows = csv_rows(model_dir)
    assert rows[0][:2] == ["update", "frames"] and all(row[0] != "update" for row in rows[1:])
    updates = [int(row[0]) for row in rows[1:]]
    assert updates == list(range(1, status["update"] + 1)), "log.csv lost or repeated updates"
    assert [int(row[1]) for row in rows[1:]] == [u * FRAMES_PER_UPDATE for u in updates]
    assert not [name for name in os.listdir(model_dir) if name.endswith(".tmp")]


@pytest.mark.parametrize(
    "signum, to_group",
    [(signal.SIGINT, True), (signal.SIGTERM, True), (signal.SIGTERM, False)],
    ids=["Ctrl-C (SIGINT to the process group)", "SIGTERM to the group", "SIGTERM to the trainer"],
)
def test_ctrl_c_and_sigterm_save_the_model_and_exit_cleanly(tmp_path, signum, to_group):
    args = [
        "--algo",
        "a2c",
        "--env",
        "CartPole-v1",
        "--model",
        "m",
        "--frames",
        "1000000000",
        "--save-interval",
        "5",
        "--workers",
        "2",
        "--quiet",
        *TINY_A2C,
    ]
    process = start_train(tmp_path, *args)
    try:
        assert wait_for_new_checkpoint(process, tmp_path / "m", None), process.stderr.read()
        time.sleep(0.2)
        workers = child_pids(process.pid)
        assert workers
        if to_group:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr  # interrupted (the model saved), not "finished"
    assert "Traceback" not in stderr and stderr.strip() == "", stderr
    assert_gone(workers)
    status = load_status(tmp_path / "m")
    rows = csv_rows(tmp_path / "m")
    assert [int(rows[-1][0]), int(rows[-1][1])] == [status["update"], status["num_frames"]]
    last_line = (tmp_path / "m" / "log.txt").read_text().strip().splitlines()[-1]
    assert last_line.startswith(
        f"# interrupted: model saved at update {status['update']}, {status['num_frames']} frames"
    )


def test_a_killed_env_worker_stops_training_with_one_line_and_keeps_the_checkpoint(tmp_path):
    args = [
        "--algo",
        "a2c",
        "--env",
        "CartPole-v1",
        "--model",
        "m",
        "--frames",
        "1000000000",
        "--save-interval",
        "1",
        "--workers",
        "2",
        "--quiet",
        *TINY_A2C,
    ]
    process = start_train(tmp_path, *args)
    try:
        assert wait_for_new_checkpoint(process, tmp_path / "m", None), process.stderr.read()
        workers = child_pids(process.pid)
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert_one_line_error(stderr, 1, process.returncode, "an environment failed", "died", "last checkpoint")
    assert_gone(workers)
    status = load_status(tmp_path / "m")
    assert status["update"] >= 1 and status["num_frames"] == status["update"] * FRAMES_PER_UPDATE


# ------------------------------------------------------------------------------------- faults while training
@pytest.mark.parametrize(
    "env_id, code, fragments",
    [
        (
            "TorchRLTest-Raising-v0",
            1,
            ["an environment failed", "(TorchRLTest-Raising-v0) raised in step", "boom from RaisingEnv"],
        ),
        ("TorchRLTest-NaNReward-v0", 1, ["diverged", "update 3", "not finite"]),
        ("TorchRLTest-NaNObservation-v0", 1, ["diverged", "update 3", "not finite"]),
    ],
    ids=["raising env", "NaN reward", "NaN observation"],
)
def test_a_fault_while_training_is_one_line_and_keeps_the_last_good_checkpoint(tmp_path, env_id, code, fragments):
    # 2 envs in 2 worker processes; both meet the fault in update 3.
    result = run_train(
        tmp_path,
        "--algo",
        "ppo",
        "--env",
        f"tests.conftest:{env_id}",
        "--model",
        "m",
        "--frames",
        "100000",
        "--save-interval",
        "1",
        "--workers",
        "2",
        "--quiet",
        *TINY,
        timeout=60,
    )
    assert_one_line_error(result.stderr, code, result.returncode, *fragments, "last checkpoint")
    status = load_status(tmp_path / "m")
    assert status["update"] == 2 and status["num_frames"] == 2 * FRAMES_PER_UPDATE
    assert all(torch.isfinite(v).all() for v in status["model_state"].values())


def test_train_never_saves_non_finite_parameters(tmp_path, monkeypatch, capsys, restore_process_state):
    """Parameters that became infinite (here: set so after update 3) stop training; the checkpoint of update 2
    stays."""
    from scripts.train import main

    original = torch_rl.PPOAlgo.update_parameters
    updates = []

    def update_parameters(self):
        logs = original(self)
        updates.append(1)
        if len(updates) == 3:
            with torch.no_grad():
                self.acmodel.actor[0].weight[0, 0] = float("inf")
        return logs

    monkeypatch.setattr(torch_rl.PPOAlgo, "update_parameters", update_parameters)
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(_with(BASE, ["--model", "m", "--save-interval", "1", "--quiet"]))
    assert_one_line_error(
        capsys.readouterr().err, 1, exit_info.value.code, "diverged at update 3", "actor.0.weight", "last checkpoint"
    )
    status = load_status(tmp_path / "m")
    assert status["update"] == 2
    assert all(torch.isfinite(v).all() for v in status["model_state"].values())


# ------------------------------------------------------------------------------------------------- full disk
DOORKEY = ["--env", "MiniGrid-DoorKey-5x5-v0", "--model", "doorkey_a2c"]
BEFORE = {"r.json": b'{"previous": 1}\n', "a.gif": b"GIF89a a previous GIF", "p.png": b"\x89PNG a previous plot"}

FULL_DISK = {
    # case: (python -m arguments (a function of the storage folder), file size limit in bytes, exit code, the file
    # that must be left as it was or must not exist (relative to the current folder), words of the error)
    # status.pt is 117 kB, the logs stay far below; where the limit cuts decides what torch.save raises
    "train saving its checkpoint (torch.save raises OSError)": (
        lambda storage: ["scripts.train", *resume_args("pendulum_a2c", storage / "pendulum_a2c", 2), "--quiet"],
        60_000,
        1,
        "../storage/pendulum_a2c/status.pt",
        ["status.pt", "File too large", "checkpoint of update", "kept"],
    ),
    "train saving its checkpoint (torch.save raises RuntimeError: unexpected pos)": (
        lambda storage: ["scripts.train", *resume_args("pendulum_a2c", storage / "pendulum_a2c", 2), "--quiet"],
        100_000,
        1,
        "../storage/pendulum_a2c/status.pt",
        ["status.pt", "File too large", "checkpoint of update", "kept"],
    ),
    "evaluate --json over a file": (
        lambda storage: ["scripts.evaluate", *DOORKEY, "--episodes", "4", "--procs", "2", "--json", "r.json"],
        256,
        2,
        "r.json",
        ["--json r.json", "File too large", "r.json is unchanged"],
    ),
    "evaluate --json a new file": (
        lambda storage: ["scripts.evaluate", *DOORKEY, "--episodes", "4", "--procs", "2", "--json", "new.json"],
        256,
        2,
        "new.json",
        ["--json new.json", "File too large"],
    ),
    "visualize --gif over a file": (
        lambda storage: ["scripts.visualize", *DOORKEY, "--pause", "0", "--gif", "a.gif"],
        256,
        2,
        "a.gif",
        ["--gif a.gif", "File too large", "a.gif is unchanged"],
    ),
    "plot --out over a file": (
        lambda storage: ["scripts.plot", "--model", "doorkey_a2c", "--out", "p.png"],
        256,
        2,
        "p.png",
        ["p.png", "File too large", "p.png is unchanged"],
    ),
}


def limit_file_size(limit):
    """A preexec_fn: writes past ``limit`` bytes fail with EFBIG (File too large), as writes on a full disk fail
    with ENOSPC, through the same code paths; SIGXFSZ, which would kill the process instead, is ignored."""

    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


@pytest.mark.parametrize("case", list(FULL_DISK))
def test_a_full_disk_is_one_line_and_leaves_every_file_as_it_was(case, tmp_path):
    arguments, limit, code, survivor, fragments = FULL_DISK[case]
    storage, work = tmp_path / "storage", tmp_path / "work"
    work.mkdir()
    for name in ("pendulum_a2c", "doorkey_a2c"):
        copy_old_model(name, storage)
    for name, data in BEFORE.items():
        (work / name).write_bytes(data)
    before = snapshot(tmp_path)
    env = {**train_env(storage), "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", *arguments(storage)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit_file_size(limit),
    )
    assert "Exception ignored" not in result.stderr, result.stderr
    assert_one_line_error(result.stderr, code, result.returncode, *fragments)
    after = snapshot(tmp_path)
    assert after.get(str(Path("work") / survivor)) == before.get(str(Path("work") / survivor))
    assert not [path for path in after if os.path.basename(path).startswith(".tmp-")]
    assert not [path for path in after if path.startswith("work") and not after[path][0]]  # no 0-byte file
