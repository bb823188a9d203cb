"""Model folders (utils/storage.py): a model is a name under storage, training writes only into its own folders,
never through a symbolic link, one training per model at a time, and a damaged log.csv is repaired row by row."""

import csv
import errno
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.test_checkpoint import copy_old_model, one_line_error, resume_args
from utils import checkpoint as checkpoints
from utils import storage
from utils.errors import UsageError
from utils.plotting import read_log

REPO = Path(__file__).resolve().parents[1]
PENDULUM = ["--algo", "a2c", "--env", "Pendulum-v1", "--procs", "2", "--frames-per-proc", "8", "--workers", "0"]


@pytest.fixture
def storage_dir(tmp_path, monkeypatch):
    root = tmp_path / "storage"
    root.mkdir()
    monkeypatch.setenv("TORCH_RL_STORAGE", str(root))
    threads, handlers = torch.get_num_threads(), {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield root
    torch.set_num_threads(threads)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def tree(folder):
    """Every path under ``folder`` (links not followed) with its bytes or link target, to compare before/after."""
    folder = Path(folder)
    result = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            result[str(p.relative_to(folder))] = ("link", os.readlink(p))
        elif p.is_file():
            result[str(p.relative_to(folder))] = (p.read_bytes(), p.stat().st_mode)
    return result


# ------------------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("name", ["DoorKey", "doorkey/ppo_seed1", "a.b-c_d", "x/y/z", "MiniGrid-DoorKey-5x5-v0_ppo"])
def test_a_valid_model_name_is_a_folder_under_storage(name, storage_dir):
    assert storage.get_model_dir(name) == os.path.join(str(storage_dir), name)


BAD_NAMES = ["../x", "/abs/path", "a/../..", "..", ".", "a//b", "a/", "", "x y", "a\\b", "~/m", "a/./b", "é", "a:b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_model_name_that_could_leave_storage_is_refused(name):
    with pytest.raises(UsageError, match=r"not a model name.*e\.g\. --model doorkey/ppo_seed1"):
        storage.check_model_name(name)


SCRIPTS = {
    "train": ["--algo", "a2c", "--env", "Pendulum-v1"],
    "evaluate": ["--env", "Pendulum-v1"],
    "visualize": ["--env", "Pendulum-v1", "--gif", "x.gif"],
    "plot": [],
}


@pytest.mark.parametrize("script", list(SCRIPTS))
@pytest.mark.parametrize("name", ["../outside", "a/../..", "/tmp/abs"])
def test_every_script_refuses_a_model_path_with_one_line_and_creates_nothing(
    script, name, storage_dir, tmp_path, capsys, monkeypatch
):
    import importlib

    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    main = importlib.import_module(f"scripts.{script}").main
    with pytest.raises(SystemExit) as exit_info:
        main([*SCRIPTS[script], "--model", name])
    line = one_line_error(capsys, exit_info)
    assert "not a model name" in line and "e.g. --model" in line, line
    assert tree(tmp_path) == before


# ------------------------------------------------------------------------------------- linked folders under storage
def _link_model(storage_dir, elsewhere):
    copy_old_model("pendulum_a2c", elsewhere)
    (storage_dir / "L").symlink_to(elsewhere / "pendulum_a2c")


LINKED_FOLDERS = {
    # case: (script, arguments, how storage/... is linked to tmp_path/elsewhere, the link the error names)
    "train --model L, L a link to an empty folder": (
        "train",
        [*PENDULUM, "--model", "L", "--frames", "16"],
        lambda storage_dir, elsewhere: (storage_dir / "L").symlink_to(elsewhere),
        "L",
    ),
    "train --model L, L a link to a model (resume would rewrite it)": (
        "train",
        [*PENDULUM, "--model", "L", "--frames", "100000"],
        _link_model,
        "L",
    ),
    "train --model sub/M, sub a link": (
        "train",
        [*PENDULUM, "--model", "sub/M", "--frames", "16"],
        lambda storage_dir, elsewhere: (storage_dir / "sub").symlink_to(elsewhere),
        "sub",
    ),
    "train --model sub/M, M a link inside a real sub": (
        "train",
        [*PENDULUM, "--model", "sub/M", "--frames", "16"],
        lambda storage_dir, elsewhere: (storage_dir / "sub").mkdir() or (storage_dir / "sub/M").symlink_to(elsewhere),
        "sub/M",
    ),
    "evaluate --model L": ("evaluate", ["--env", "Pendulum-v1", "--model", "L", "--episodes", "1"], _link_model, "L"),
    "visualize --model L": ("visualize", ["--env", "Pendulum-v1", "--model", "L", "--gif", "x.gif"], _link_model, "L"),
    "plot --model L": ("plot", ["--model", "L", "--out", "x.png"], _link_model, "L"),
}


@pytest.mark.parametrize("case", list(LINKED_FOLDERS))
def test_a_linked_folder_under_storage_is_refused_with_one_line_and_nothing_is_written(
    case, storage_dir, tmp_path, capsys, monkeypatch
):
    import importlib

    script, argv, link, name = LINKED_FOLDERS[case]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    link(storage_dir, elsewhere)
    monkeypatch.chdir(tmp_path)
    before = tree(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"scripts.{script}").main(argv)
    line = one_line_error(capsys, exit_info)
    assert f"{storage_dir / name} is a symbolic link" in line and "--model" in line, line
    assert tree(tmp_path) == before


def test_a_link_to_the_storage_root_is_followed(tmp_path, monkeypatch, storage_dir):
    """The storage root is the user's choice (TORCH_RL_STORAGE, or a link at ./storage to a bigger disk): a link
    there, or above it, is followed; only the folders under it must not be links."""
    from scripts.train import main

    (tmp_path / "root-link").symlink_to(storage_dir)
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path / "root-link"))
    main([*PENDULUM, "--model", "sub/M", "--frames", "16", "--quiet"])
    assert checkpoints.load(storage_dir / "sub" / "M").num_frames == 16


def test_plot_replaces_a_link_at_its_default_png_instead_of_writing_through_it(storage_dir, tmp_path, capsys):
    from scripts.plot import main

    copy_old_model("pendulum_a2c", storage_dir)
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"not yours")
    (storage_dir / "plot.png").symlink_to(victim)
    main(["--model", "pendulum_a2c"])
    assert victim.read_bytes() == b"not yours"
    assert not (storage_dir / "plot.png").is_symlink()
    assert (storage_dir / "plot.png").read_bytes().startswith(b"\x89PNG")


def test_the_default_model_name_of_a_module_env_id_is_a_valid_name():
    name = storage.default_model_name("tests.test_reliability:TorchRLTest-Raising-v0", "ppo", 1)
    assert storage.check_model_name(name) == "tests.test_reliability_TorchRLTest-Raising-v0_ppo_seed1"


# -------------------------------------------------------------------------------------------- non-model folders
@pytest.mark.parametrize("own_file", ["chapter1.txt", "config.json"])
def test_training_refuses_a_folder_that_is_not_a_model_and_touches_nothing_in_it(own_file, storage_dir, capsys):
    """The folder holds a file of the user's, or only names that training writes too, but a config.json of its own."""
    from scripts.train import main

    folder = storage_dir / "thesis"
    folder.mkdir()
    if own_file == "chapter1.txt":
        (folder / "chapter1.txt").write_text("my work")
    (folder / "config.json").write_text('{"mine": 1}')
    (folder / "log.csv").write_text("update,frames\n0,0\n1,10\n")
    (folder / ".tmp-notes.tmp").write_text("keep me")
    (folder / "log.csv").chmod(0o644)
    before = tree(storage_dir)
    with pytest.raises(SystemExit) as exit_info:
        main([*PENDULUM, "--model", "thesis", "--frames", "16"])
    line = one_line_error(capsys, exit_info)
    assert "not a torch_rl model" in line and own_file in line and "--model thesis_2" in line, line
    assert tree(storage_dir) == before


def test_a_folder_holding_only_what_training_writes_is_a_model_not_yet_saved(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    storage.check_model_folder(folder, "m")  # empty
    for name in ("log.txt", "log.csv", "train.lock", ".tmp-abc.tmp", "events.out.tfevents.1.host"):
        (folder / name).write_text("")
    storage.check_model_folder(folder, "m")
    (folder / "config.json").write_text('{"algo": "ppo", "env": "CartPole-v1", "frames_per_proc": 128}')
    storage.check_model_folder(folder, "m")
    (folder / "notes.md").write_text("")
    with pytest.raises(UsageError, match="not a torch_rl model"):
        storage.check_model_folder(folder, "m")
    (folder / "status.pt").write_text("")  # a model may hold the user's files beside its own
    storage.check_model_folder(folder, "m")
    (tmp_path / "f").write_text("")
    with pytest.raises(UsageError, match="is not a folder"):
        storage.check_model_folder(tmp_path / "f", "f")


def test_resume_removes_only_the_temp_files_that_torch_rl_writes(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in (".tmp-a1.tmp", ".write-test-xyz", ".status-b2.tmp", ".log-c3.tmp", "notes.tmp"):
        (folder / name).write_text("x")
    storage.remove_temp_files(str(folder))
    assert sorted(os.listdir(folder)) == [".log-c3.tmp", ".status-b2.tmp", "notes.tmp"]


# ----------------------------------------------------------------------------------------------------- symlinks
@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    return path


@pytest.mark.parametrize("link", ["log.txt", "log.csv", "status.pt"])
def test_resume_refuses_a_symlink_in_the_model_folder_and_writes_nothing_through_it(link, storage_dir, victim, capsys):
    from scripts.train import main

    model_dir = copy_old_model("pendulum_a2c", storage_dir)
    argv = resume_args("pendulum_a2c", model_dir)
    if link == "status.pt":  # the link points at a real checkpoint: still refused, as it could point anywhere
        os.replace(model_dir / "status.pt", victim)
    (model_dir / link).unlink(missing_ok=True)
    (model_dir / link).symlink_to(victim)
    content = victim.read_bytes()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    line = one_line_error(capsys, exit_info)
    assert "symbolic link" in line and link in line, line
    assert victim.read_bytes() == content


def test_files_of_a_model_folder_are_opened_without_following_links(tmp_path, victim):
    folder = tmp_path / "m"
    folder.mkdir()
    for name in ("log.txt", "log.csv", "train.lock", "status.pt"):
        (folder / name).symlink_to(victim)
    with pytest.raises(UsageError, match="symbolic link"):
        storage.TextLogger(folder)
    with pytest.raises(UsageError, match="symbolic link"):
        storage.CSVLogger(folder, ["update"])
    with pytest.raises(UsageError, match="symbolic link"):
        storage.ModelLock(folder)
    with pytest.raises(UsageError, match="symbolic link"):
        storage.trim_csv_log(folder, 0)
    with pytest.raises(UsageError, match="symbolic link"):
        read_log(folder / "log.csv")
    with pytest.raises(UsageError, match="symbolic link"):
        checkpoints.load(folder)
    (folder / "config.json").symlink_to(victim)
    storage.save_config({"a": 1}, folder)  # replaces the link by a file, never writes through it
    assert not (folder / "config.json").is_symlink() and (folder / "config.json").read_text().startswith("{")
    checkpoints.save(checkpoints.Checkpoint(model_state={}), folder)
    assert not (folder / "status.pt").is_symlink()
    assert victim.read_text() == "precious\n"


def test_a_fifo_log_is_refused_without_hanging(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    os.mkfifo(folder / "log.csv")
    with pytest.raises(UsageError, match="not a regular file"):
        read_log(folder / "log.csv")
    with pytest.raises(UsageError, match="not a regular file"):
        storage.trim_csv_log(folder, 0)


# --------------------------------------------------------------------------------------------------------- lock
def test_a_second_lock_on_a_model_names_the_holder_and_a_released_lock_is_free(tmp_path):
    lock = storage.ModelLock(tmp_path)
    with pytest.raises(UsageError, match=rf"being trained by process {os.getpid()}\b"):
        storage.ModelLock(tmp_path)
    lock.release()
    storage.ModelLock(tmp_path).release()


def test_one_training_per_model_readers_work_meanwhile_and_kill_9_frees_the_lock(storage_dir, tmp_path, capsys):
    """A training holds the lock; a second one gets one line naming its PID (exit 2) and changes nothing, while
    evaluate, visualize and plot work; after kill -9 of the first, training the model works again."""
    from scripts.evaluate import main as evaluate
    from scripts.plot import main as plot
    from scripts.train import main as train
    from scripts.visualize import main as visualize

    model_dir = copy_old_model("pendulum_a2c", storage_dir)
    argv = resume_args("pendulum_a2c", model_dir, more_updates=10**6)
    first = subprocess.Popen(
        [sys.executable, "-m", "scripts.train", *argv, "--save-interval", "1"],
        cwd=REPO,
        env={**os.environ, "TORCH_RL_STORAGE": str(storage_dir)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        saved = raw_update(model_dir)
        deadline = time.time() + 60
        while raw_update(model_dir) <= saved + 1:  # it trains and saves
            assert first.poll() is None and time.time() < deadline, "the first training did not save twice"
            time.sleep(0.05)
        with pytest.raises(SystemExit) as exit_info:
            train(resume_args("pendulum_a2c", model_dir, more_updates=1))
        line = one_line_error(capsys, exit_info)
        assert f"being trained by process {first.pid}" in line and "train.lock" in line, line
        evaluate(["--env", "Pendulum-v1", "--model", "pendulum_a2c", "--episodes", "1", "--workers", "0"])
        visualize(["--env", "Pendulum-v1", "--model", "pendulum_a2c", "--gif", str(tmp_path / "p.gif")])
        plot(["--model", "pendulum_a2c", "--out", str(tmp_path / "p.png")])
        assert (tmp_path / "p.gif").stat().st_size > 0 and (tmp_path / "p.png").stat().st_size > 0
        assert first.poll() is None, "the first training was disturbed"
    finally:
        first.kill()  # SIGKILL: no clean-up runs, the kernel drops the lock
        first.wait()
    storage.ModelLock(model_dir).release()
    before = raw_update(model_dir)
    train(resume_args("pendulum_a2c", model_dir, more_updates=1))
    assert raw_update(model_dir) == before + 1


def raw_update(model_dir):
    while True:
        try:
            return torch.load(Path(model_dir) / "status.pt", weights_only=True)["update"]
        except (FileNotFoundError, RuntimeError, EOFError):  # never torn (atomic), but be patient
            time.sleep(0.01)


# --------------------------------------------------------------------------------------------------- log repair
HEADER = "update,frames,return_mean\r\n"


def rows(*updates):
    return "".join(f"{u},{u * 10},0.5\r\n" for u in updates)


def write_log(folder, text):
    folder.mkdir(exist_ok=True)
    path = folder / "log.csv"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def updates_in(path):
    return [line.split(",")[0] for line in path.read_text().splitlines()[1:]]


def test_resume_drops_rows_after_the_checkpoint_and_a_torn_last_line(tmp_path):
    path = write_log(tmp_path / "m", HEADER + rows(1, 2, 3, 4, 5) + "6,60,0.")
    storage.trim_csv_log(tmp_path / "m", 4)
    assert path.read_bytes() == (HEADER + rows(1, 2, 3, 4)).encode()


def test_a_header_that_a_crash_cut_off_is_dropped_and_written_again(tmp_path):
    path = write_log(tmp_path / "m", "update,fra")
    storage.trim_csv_log(tmp_path / "m", 0)
    assert path.read_bytes() == b""
    storage.CSVLogger(tmp_path / "m", ["update", "frames"]).close()
    assert path.read_bytes() == b"update,frames\r\n"


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage\r\n",
        "x,y,z\r\n",
        "3,30\r\n",
        "\x00\x01\x02,\xff\r\n",
        "3,30," + "9" * (200 * 1024) + "\r\n",  # a field over 128 KiB
    ],
)
def test_a_damaged_line_in_the_middle_is_dropped_alone(garbage, tmp_path):
    path = write_log(
        tmp_path / "m", (HEADER + rows(1, 2)).encode() + garbage.encode("latin-1") + rows(4, 5, 6).encode()
    )
    plotted = read_log(path)["update"]  # plot reads around it too
    assert {1, 2, 4, 5, 6} <= set(plotted[~np.isnan(plotted)].tolist())
    storage.trim_csv_log(tmp_path / "m", 6)
    assert updates_in(path) == ["1", "2", "4", "5", "6"]  # not 1 2 5 6, nor 1 2


def test_binary_bytes_in_a_row_are_dropped_and_plot_reads_the_rest(tmp_path):
    path = write_log(tmp_path / "m", HEADER.encode() + rows(1).encode() + os.urandom(4096) + b"\n" + rows(3).encode())
    storage.trim_csv_log(tmp_path / "m", 10)
    assert updates_in(path) == ["1", "3"]


NOT_CSV = {
    # case: the bytes of log.csv
    "random bytes": os.urandom(300 * 1024),
    "pickle bytes, no newline": pickle.dumps({"update": 1, "frames": np.arange(8)}, protocol=4).replace(b"\n", b""),
    "text, no newline, not a header": b"these are my notes, not a log",
}


@pytest.mark.parametrize("case", list(NOT_CSV))
def test_a_log_that_is_not_csv_is_one_line_for_resume_and_plot(case, storage_dir, capsys):
    from scripts.plot import main as plot
    from scripts.train import main as train

    model_dir = copy_old_model("pendulum_a2c", storage_dir)
    (model_dir / "log.csv").write_bytes(NOT_CSV[case])
    before = tree(model_dir)
    for main, argv in ((train, resume_args("pendulum_a2c", model_dir)), (plot, ["--model", "pendulum_a2c"])):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        line = one_line_error(capsys, exit_info)
        assert "log.csv" in line, line
    assert {k: v for k, v in tree(model_dir).items() if k != "train.lock"} == before


HUGE_LOGS = {
    # case: log.csv rows after the header (update, frames, FPS, return_mean, return_std)
    "1e308 beside -1e308": "1,10,5,1e308,1e308\n2,20,5,-1e308,1e308\n3,30,5,0.5,0.1\n",
    "1e308 beside -1e308, no std": "1,10,5,1e308,\n2,20,5,-1e308,\n3,30,5,0.5,\n",
    "frames 1e308 and -1e308": "1,1e308,5,0.5,0.1\n2,-1e308,5,0.5,0.1\n3,30,5,0.5,0.1\n",
    "inf and -inf": "1,10,inf,inf,inf\n2,20,-inf,-inf,0\n3,30,5,0.5,0.1\n",
}


@pytest.mark.parametrize("case", list(HUGE_LOGS))
def test_plot_draws_a_log_with_huge_values_leaving_them_out(case, storage_dir, tmp_path, capsys):
    """Values no training logs (beyond +-1e100, or infinite) are a damaged row's: plotted as missing, with a word."""
    from scripts.plot import main

    write_log(storage_dir / "m", "update,frames,FPS,return_mean,return_std\n" + HUGE_LOGS[case])
    out = main(["--model", "m", "--out", str(tmp_path / "p.png")])
    assert Path(out).read_bytes().startswith(b"\x89PNG")
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err and "left out" in printed.out, printed


def test_repair_keeps_the_logs_permissions(tmp_path):
    path = write_log(tmp_path / "m", HEADER + rows(1, 2, 3))
    path.chmod(0o640)
    storage.trim_csv_log(tmp_path / "m", 2)
    assert updates_in(path) == ["1", "2"] and (path.stat().st_mode & 0o777) == 0o640


def test_a_resumed_model_keeps_its_valid_rows(storage_dir):
    """End to end: resume a model whose log.csv holds a garbage line and rows after the checkpoint."""
    from scripts.train import main

    model_dir = copy_old_model("pendulum_a2c", storage_dir)
    path = model_dir / "log.csv"
    lines = path.read_text().splitlines(keepends=True)
    saved = checkpoints.load(model_dir).update
    assert [line.split(",")[0] for line in lines[1:]] == [str(u) for u in range(1, saved + 1)]
    path.write_text(
        "".join(lines[:2]) + "\x00garbage\r\n" + "".join(lines[2:]) + lines[-1].replace(f"{saved},", f"{saved + 1},", 1)
    )
    main(resume_args("pendulum_a2c", model_dir, more_updates=1))
    assert updates_in(path) == [str(u) for u in range(1, saved + 2)]


# ----------------------------------------------------------------------------------------------- failed writes
def test_a_full_disk_while_saving_keeps_the_checkpoint_and_is_one_line(storage_dir, monkeypatch, capsys):
    from scripts.train import main

    model_dir = copy_old_model("pendulum_a2c", storage_dir)
    saved = checkpoints.load(model_dir).update
    checkpoint_before = (model_dir / "status.pt").read_bytes()
    real_fsync = os.fsync

    def full_disk(fd):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".tmp-"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(storage.os, "fsync", full_disk)
    with pytest.raises(SystemExit) as exit_info:
        main(resume_args("pendulum_a2c", model_dir, more_updates=2))
    line = one_line_error(capsys, exit_info, code=1)
    assert "No space left on device" in line and f"checkpoint of update {saved}" in line and "kept" in line, line
    assert (model_dir / "status.pt").read_bytes() == checkpoint_before
    assert not [name for name in os.listdir(model_dir) if name.startswith(".tmp-")]


def test_a_log_that_cannot_be_written_is_one_line(storage_dir, monkeypatch, capsys):
    from scripts.train import main

    model_dir = copy_old_model("pendulum_a2c", storage_dir)
    real_open = os.open

    def read_only_log(path, flags, *args, **kwargs):
        if str(path).endswith("log.csv") and flags & (os.O_WRONLY | os.O_RDWR):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(storage.os, "open", read_only_log)
    with pytest.raises(SystemExit) as exit_info:
        main(resume_args("pendulum_a2c", model_dir))
    line = one_line_error(capsys, exit_info)
    assert "log.csv" in line and "Permission denied" in line, line


def test_a_log_write_failing_mid_training_is_one_line_exit_1(storage_dir, monkeypatch, capsys):
    from scripts.train import main

    model_dir = copy_old_model("pendulum_a2c", storage_dir)

    def disk_full(self, row):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(csv.DictWriter, "writerow", disk_full)
    with pytest.raises(SystemExit) as exit_info:
        main(resume_args("pendulum_a2c", model_dir))
    line = one_line_error(capsys, exit_info, code=1)
    assert "log.csv" in line and "No space left on device" in line and "kept" in line, line
