"""Bad command-line input, exit codes and env time-outs of the starter scripts and benchmarks.ceiling, as a table
(issue 12).

Each row of CASES is a command, the exit code it must end with and a pattern its one line ``error: ...`` must
match; the rows run in this process (main(argv) raises SystemExit), and none may create or change a file in
storage. The few cases that need a real process (signals during start-up, an env that hangs) are subprocesses
at the end. The whole file takes ~30 s.
"""

import importlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.envs import FixedLengthEnv

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--algo", "ppo", "--env", "CartPole-v1", "--model", "m", "--frames", "64", "--workers", "0", "--quiet"]
TINY = ["--procs", "2", "--frames-per-proc", "16", "--batch-size", "16", "--epochs", "1"]
EVALUATE = ["--env", "CartPole-v1", "--model", "m"]
VISUALIZE = ["--env", "CartPole-v1", "--model", "m", "--gif", "out.gif"]


HANGING = "TorchRLTest-Hanging-v0"
TEST_ENVS = "tests.conftest"  # the module that registers the TorchRLTest-* ids


def number_error(flag, value, bounds):
    return rf"argument {flag}: must be a finite number{' ' + bounds if bounds else ''}[^,]*, got {re.escape(value)}"


def integer_error(flag, value, bounds):
    return rf"argument {flag}: must be an integer{' ' + bounds if bounds else ''}[^,]*, got '?{re.escape(value)}'?"


# (script, arguments, exit code, pattern of the error line)
CASES = {
    # --- train: every numeric flag, checked when parsed -----------------------------------------------------
    "train --discount 1.5": (
        "train",
        [*TRAIN, "--discount", "1.5"],
        2,
        number_error("--discount", "1.5", "from 0 to 1"),
    ),
    "train --discount -0.1": ("train", [*TRAIN, "--discount", "-0.1"], 2, number_error("--discount", "-0.1", "from 0")),
    "train --gae-lambda 2": (
        "train",
        [*TRAIN, "--gae-lambda", "2"],
        2,
        number_error("--gae-lambda", "2", "from 0 to 1"),
    ),
    "train --clip-eps -1": ("train", [*TRAIN, "--clip-eps", "-1"], 2, number_error("--clip-eps", "-1", "more than 0")),
    "train --clip-eps 0": ("train", [*TRAIN, "--clip-eps", "0"], 2, number_error("--clip-eps", "0", "more than 0")),
    "train --clip-eps 2 (the library's range)": (
        "train",
        [*TRAIN, "--clip-eps", "2"],
        2,
        number_error("--clip-eps", "2", "more than 0 and at most 1"),
    ),
    "train --value-loss-coef -1": (
        "train",
        [*TRAIN, "--value-loss-coef", "-1"],
        2,
        number_error("--value-loss-coef", "-1", "from 0 to 100"),
    ),
    "train --entropy-coef nan": (
        "train",
        [*TRAIN, "--entropy-coef", "nan"],
        2,
        number_error("--entropy-coef", "nan", "from 0 to 100"),
    ),
    "train --entropy-coef inf": (
        "train",
        [*TRAIN, "--entropy-coef", "inf"],
        2,
        number_error("--entropy-coef", "inf", "from 0 to 100"),
    ),
    "train --optim-alpha 2": (
        "train",
        [*TRAIN, "--algo", "a2c", "--optim-alpha", "2"],
        2,
        number_error("--optim-alpha", "2", "more than 0 and less than 1"),
    ),
    "train --optim-alpha 1": ("train", [*TRAIN, "--optim-alpha", "1"], 2, number_error("--optim-alpha", "1", "more")),
    "train --optim-eps nan": ("train", [*TRAIN, "--optim-eps", "nan"], 2, number_error("--optim-eps", "nan", "more")),
    "train --optim-eps 0": ("train", [*TRAIN, "--optim-eps", "0"], 2, number_error("--optim-eps", "0", "more than 0")),
    "train --lr 0": ("train", [*TRAIN, "--lr", "0"], 2, number_error("--lr", "0", "more than 0")),
    "train --lr inf": ("train", [*TRAIN, "--lr", "inf"], 2, number_error("--lr", "inf", "more than 0")),
    "train --max-grad-norm -1": (
        "train",
        [*TRAIN, "--max-grad-norm", "-1"],
        2,
        number_error("--max-grad-norm", "-1", ""),
    ),
    "train --frames 0": ("train", [*TRAIN, "--frames", "0"], 2, integer_error("--frames", "0", "from 1 to")),
    "train --frames -5": ("train", [*TRAIN, "--frames", "-5"], 2, integer_error("--frames", "-5", "from 1 to")),
    "train --frames-per-proc 0": (
        "train",
        [*TRAIN, "--frames-per-proc", "0"],
        2,
        integer_error("--frames-per-proc", "0", "at least 1"),
    ),
    "train --save-interval -3": (
        "train",
        [*TRAIN, "--save-interval", "-3"],
        2,
        integer_error("--save-interval", "-3", "at least 0"),
    ),
    "train --log-interval 0": ("train", [*TRAIN, "--log-interval", "0"], 2, integer_error("--log-interval", "0", "at")),
    "train --epochs 0": ("train", [*TRAIN, "--epochs", "0"], 2, integer_error("--epochs", "0", "from 1 to 1000")),
    "train --batch-size 0": ("train", [*TRAIN, "--batch-size", "0"], 2, integer_error("--batch-size", "0", "at least")),
    "train --recurrence 0": ("train", [*TRAIN, "--recurrence", "0"], 2, integer_error("--recurrence", "0", "at least")),
    "train --threads 0": ("train", [*TRAIN, "--threads", "0"], 2, integer_error("--threads", "0", "from 1 to 1024")),
    "train --workers -1": ("train", [*TRAIN, "--workers", "-1"], 2, integer_error("--workers", "-1", "from 0 to 1024")),
    "train --procs 0": ("train", [*TRAIN, "--procs", "0"], 2, integer_error("--procs", "0", "at least 1")),
    "train --procs 1000000000": (
        "train",
        [*TRAIN, "--procs", "1000000000"],
        2,
        r"--procs 1000000000 does not fit in memory: at most \d+ here \(about \d+ KiB per env.*GiB available\)",
    ),
    "train --frames-per-proc 10**9": (
        "train",
        [*TRAIN, "--frames-per-proc", "1000000000", "--batch-size", "16"],
        2,
        r"--procs 16 does not fit in memory: at most \d+ here .*lower --procs or --frames-per-proc",
    ),
    "train --seed -1": ("train", [*TRAIN, "--seed", "-1"], 2, integer_error("--seed", "-1", "from 0 to 4294967295")),
    "train --seed 1e20": (
        "train",
        [*TRAIN, "--seed", "1e20"],
        2,
        integer_error("--seed", "1e20", "from 0 to 4294967295"),
    ),
    "train --seed 2**32": ("train", [*TRAIN, "--seed", str(2**32)], 2, integer_error("--seed", str(2**32), "from 0")),
    "train --stop-at-return nan": (
        "train",
        [*TRAIN, "--stop-at-return", "nan"],
        2,
        number_error("--stop-at-return", "nan", ""),
    ),
    "train --env-timeout -1": (
        "train",
        [*TRAIN, "--env-timeout", "-1"],
        2,
        number_error("--env-timeout", "-1", "from 0"),
    ),
    "train --env-timeout nan": ("train", [*TRAIN, "--env-timeout", "nan"], 2, number_error("--env-timeout", "nan", "")),
    # --- train: finite but huge values, which overflowed inside torch (issue 32) ---------------------------------
    **{
        f"train {' '.join(flags)}": ("train", [*TRAIN, *flags], 2, number_error(flags[-2], flags[-1], bounds))
        for flags, bounds in [
            (["--clip-eps", "1e308"], "more than 0 and at most 1"),
            (["--clip-eps", "1.5"], "more than 0 and at most 1"),
            (["--lr", "1e39"], "more than 0 and at most 1"),
            (["--algo", "a2c", "--lr", "1e308"], "more than 0 and at most 1"),
            (["--entropy-coef", "1e308"], "from 0 to 100"),
            (["--value-loss-coef", "1e308"], "from 0 to 100"),
            (["--max-grad-norm", "1e308"], "more than 0 and at most 1e\\+06"),
            (["--optim-eps", "1e308"], "more than 0 and at most 1"),
            (["--explore", "rnd", "--explore-coef", "1e308"], "from 0 to 100"),
        ]
    },
    "train --epochs 1e12": ("train", [*TRAIN, "--epochs", "1e12"], 2, integer_error("--epochs", "1e12", "from 1 to")),
    "train --frames 1e30": ("train", [*TRAIN, "--frames", "1e30"], 2, integer_error("--frames", "1e30", "from 1 to")),
    # --- train: flags that would do nothing (issue 32) ----------------------------------------------------------
    **{
        f"train --algo a2c {' '.join(flag)}": (
            "train",
            [*TRAIN, "--algo", "a2c", *flag],
            2,
            rf"{flag[0]} is used by --algo ppo only, and --algo a2c would ignore it: drop {flag[0]}, or train with "
            r"--algo ppo",
        )
        for flag in (["--clip-eps", "0.1"], ["--epochs", "2"], ["--batch-size", "8"], ["--normalize-advantages"])
    },
    "train --algo ppo --optim-alpha": (
        "train",
        [*TRAIN, "--optim-alpha", "0.9"],
        2,
        r"--optim-alpha is used by --algo a2c only, and --algo ppo would ignore it: drop --optim-alpha",
    ),
    "train --model ''": ("train", [*TRAIN, "--model", ""], 2, r"--model '' is not a folder name"),
    "train --model ' '": ("train", [*TRAIN, "--model", " "], 2, r"--model ' ' is not a folder name"),
    # --- train: devices and env ids ---------------------------------------------------------------------------
    **{
        f"train --device {device}": (
            "train",
            [*TRAIN, "--device", device],
            2,
            rf"--device {device}: scripts\.train runs on cpu or cuda, not {device}",
        )
        for device in ("mps", "xpu", "meta")
    },
    "train --device gpu7": ("train", [*TRAIN, "--device", "gpu7"], 2, r"--device 'gpu7' is not a torch device"),
    "train --env :X-v0": ("train", [*TRAIN, "--env", ":X-v0"], 2, r"--env :X-v0: '' is not a module name"),
    "train --env .x:X-v0": ("train", [*TRAIN, "--env", ".x:X-v0"], 2, r"--env \.x:X-v0: '\.x' is not a module name"),
    # --- train: exploration, schedule, evaluation (issue 17) -------------------------------------------------
    "train --explore curiosity": (
        "train",
        [*TRAIN, "--explore", "curiosity"],
        2,
        r"argument --explore: invalid choice: 'curiosity'",
    ),
    "train --explore-coef -1": (
        "train",
        [*TRAIN, "--explore", "rnd", "--explore-coef", "-1"],
        2,
        number_error("--explore-coef", "-1", "from 0 to 100"),
    ),
    "train --explore-coef without --explore": (
        "train",
        [*TRAIN, "--explore-coef", "0.1"],
        2,
        r"--explore-coef weighs an exploration bonus: add --explore, or drop it",
    ),
    "train --lr-schedule cosine": (
        "train",
        [*TRAIN, "--lr-schedule", "cosine"],
        2,
        r"argument --lr-schedule: invalid choice: 'cosine'",
    ),
    "train --eval-interval -1": (
        "train",
        [*TRAIN, "--eval-interval", "-1"],
        2,
        integer_error("--eval-interval", "-1", "at least 0"),
    ),
    "train --eval-episodes 0": (
        "train",
        [*TRAIN, "--eval-interval", "1", "--eval-episodes", "0"],
        2,
        integer_error("--eval-episodes", "0", "from 1"),
    ),
    "train --eval-episodes without --eval-interval": (
        "train",
        [*TRAIN, "--eval-episodes", "5"],
        2,
        r"--eval-episodes sets up evaluations during training: add --eval-interval N",
    ),
    "train --eval-env fake": (
        "train",
        [*TRAIN, "--eval-interval", "1", "--eval-env", "fake"],
        2,
        r"argument --eval-env: invalid choice: 'fake'",
    ),
    # --- evaluate ---------------------------------------------------------------------------------------------
    "evaluate --seed -1": ("evaluate", [*EVALUATE, "--seed", "-1"], 2, integer_error("--seed", "-1", "from 0")),
    "evaluate --seed 1e20": ("evaluate", [*EVALUATE, "--seed", "1e20"], 2, integer_error("--seed", "1e20", "from 0")),
    "evaluate --episodes 0": (
        "evaluate",
        [*EVALUATE, "--episodes", "0"],
        2,
        integer_error("--episodes", "0", "from 1"),
    ),
    "evaluate --procs 0": ("evaluate", [*EVALUATE, "--procs", "0"], 2, integer_error("--procs", "0", "at least 1")),
    "evaluate --procs 10**9": (
        "evaluate",
        [*EVALUATE, "--procs", "1000000000", "--episodes", "10000000"],
        2,
        r"--procs 10000000 does not fit in memory: at most \d+",
    ),
    "evaluate --workers -1": (
        "evaluate",
        [*EVALUATE, "--workers", "-1"],
        2,
        integer_error("--workers", "-1", "from 0"),
    ),
    "evaluate --env-timeout -1": (
        "evaluate",
        [*EVALUATE, "--env-timeout", "-1"],
        2,
        number_error("--env-timeout", "-1", "from 0"),
    ),
    "evaluate --env-timeout nan": (
        "evaluate",
        [*EVALUATE, "--env-timeout", "nan"],
        2,
        number_error("--env-timeout", "nan", "from 0"),
    ),
    "evaluate --worst-episodes-to-show -1": (
        "evaluate",
        [*EVALUATE, "--worst-episodes-to-show", "-1"],
        2,
        integer_error("--worst-episodes-to-show", "-1", "from 0"),
    ),
    "evaluate --worst-episodes-to-show with --json -": (
        "evaluate",
        [*EVALUATE, "--worst-episodes-to-show", "3", "--json", "-"],
        2,
        r"--worst-episodes-to-show prints to stdout, which --json - keeps for the JSON .*: drop one of them",
    ),
    "evaluate --json DIR": ("evaluate", [*EVALUATE, "--json", "."], 2, r"cannot write --json \.: it is a folder"),
    "evaluate --json missing/x.json": (
        "evaluate",
        [*EVALUATE, "--json", "missing/x.json"],
        2,
        r"cannot write --json missing/x\.json: the folder .*missing does not exist",
    ),
    # --- visualize --------------------------------------------------------------------------------------------
    "visualize --seed -1": ("visualize", [*VISUALIZE, "--seed", "-1"], 2, integer_error("--seed", "-1", "from 0")),
    "visualize --seed 1e20": ("visualize", [*VISUALIZE, "--seed", "1e20"], 2, integer_error("--seed", "1e20", "from")),
    "visualize --episodes 0": (
        "visualize",
        [*VISUALIZE, "--episodes", "0"],
        2,
        integer_error("--episodes", "0", "from"),
    ),
    "visualize --pause nan": (
        "visualize",
        [*VISUALIZE, "--pause", "nan"],
        2,
        number_error("--pause", "nan", "from 0 to 60"),
    ),
    "visualize --pause 1e300": (
        "visualize",
        [*VISUALIZE, "--pause", "1e300"],
        2,
        number_error("--pause", "1e300", "from 0 to 60"),
    ),
    "visualize --pause -1": (
        "visualize",
        [*VISUALIZE, "--pause", "-1"],
        2,
        number_error("--pause", "-1", "from 0 to 60"),
    ),
    "visualize --shift -1": ("visualize", [*VISUALIZE, "--shift", "-1"], 2, integer_error("--shift", "-1", "from 0")),
    "visualize --shift 1e9": (
        "visualize",
        [*VISUALIZE, "--shift", "1e9"],
        2,
        integer_error("--shift", "1e9", "from 0 to 1000000"),
    ),
    "visualize --gif DIR": ("visualize", [*VISUALIZE, "--gif", "."], 2, r"cannot write --gif \.: it is a folder"),
    "visualize --gif DIR/": ("visualize", [*VISUALIZE, "--gif", "sub/"], 2, r"cannot write --gif sub/: it is a folder"),
    # --- plot -------------------------------------------------------------------------------------------------
    "plot --smooth 0": ("plot", ["--model", "m", "--smooth", "0"], 2, integer_error("--smooth", "0", "from 1")),
    "plot --out f.xyz": (
        "plot",
        ["--model", "m", "--out", "f.xyz"],
        2,
        r"--out f\.xyz: cannot write \.xyz images; use one of .*\.pdf, .*\.png, .*\.svg",
    ),
    "plot --out missing/f.png": (
        "plot",
        ["--model", "m", "--out", "missing/f.png"],
        2,
        r"cannot write --out missing/f\.png: the folder .*missing does not exist",
    ),
    # --- outputs: never a model's file, never a FIFO (issue 32, sections 2 and 5) ------------------------------
    "evaluate --json a model's status.pt": (
        "evaluate",
        [*EVALUATE, "--json", "../storage/G1/status.pt"],
        2,
        r"cannot write --json \.\./storage/G1/status\.pt: .*G1 is a model folder; .*outside it",
    ),
    "evaluate --json a model's log.csv": (
        "evaluate",
        [*EVALUATE, "--json", "../storage/G1/log.csv"],
        2,
        r"cannot write --json \.\./storage/G1/log\.csv: .*G1 is a model folder",
    ),
    "evaluate --json a new file in a model folder": (
        "evaluate",
        [*EVALUATE, "--json", "../storage/G1/results.json"],
        2,
        r"cannot write --json \.\./storage/G1/results\.json: .*G1 is a model folder",
    ),
    "evaluate --json in the evaluated model's folder (no status.pt)": (
        "evaluate",
        [*EVALUATE, "--json", "../storage/m/log.txt"],
        2,
        r"cannot write --json \.\./storage/m/log\.txt: .*m is a model folder",
    ),
    "evaluate --json a link to a model's file": (
        "evaluate",
        [*EVALUATE, "--json", "link-to-status"],
        2,
        r"cannot write --json link-to-status: .*G1 is a model folder",
    ),
    "evaluate --json through a linked model folder": (
        "evaluate",
        [*EVALUATE, "--json", "linked-model/status.pt"],
        2,
        r"cannot write --json linked-model/status\.pt: .*G1 is a model folder",
    ),
    "evaluate --json a FIFO": (
        "evaluate",
        [*EVALUATE, "--json", "fifo"],
        2,
        r"cannot write --json fifo: it is not a regular file",
    ),
    "visualize --gif into a model folder": (
        "visualize",
        [*VISUALIZE, "--gif", "../storage/G1/status"],
        2,
        r"cannot write --gif \.\./storage/G1/status\.gif: .*G1 is a model folder",
    ),
    "visualize --gif a FIFO": (
        "visualize",
        [*VISUALIZE, "--gif", "fifo.gif"],
        2,
        r"cannot write --gif fifo\.gif: it is not a regular file",
    ),
    "plot --out a model folder": (
        "plot",
        ["--model", "m", "--out", "../storage/G1"],
        2,
        r"cannot write --out \.\./storage/G1/plot\.png: .*G1 is a model folder",
    ),
    "plot --out a FIFO": ("plot", ["--model", "m", "--out", "fifo.png"], 2, r"cannot write --out fifo\.png: it is not"),
    "plot's default PNG a FIFO": (
        "plot",
        ["--model", "m", "--out-default-fifo"],
        2,
        r"cannot write the plot .*storage/plot\.png: it is not a regular file",
    ),
    # --- benchmarks.ceiling: navigation envs of Minigrid only ------------------------------------------------
    "ceiling --episodes 0": (
        "benchmarks.ceiling",
        ["--episodes", "0"],
        2,
        integer_error("--episodes", "0", "at least 1"),
    ),
    "ceiling --seed -1": ("benchmarks.ceiling", ["--seed", "-1"], 2, integer_error("--seed", "-1", "at least 0")),
    "ceiling a non-MiniGrid env": (
        "benchmarks.ceiling",
        ["--env", "CartPole-v1", "--episodes", "1"],
        2,
        r"--env CartPole-v1 is not a MiniGrid env",
    ),
    "ceiling an env with keys": (
        "benchmarks.ceiling",
        ["--env", "MiniGrid-DoorKey-5x5-v0", "--episodes", "1"],
        2,
        r"layout 0 has no way to the goal by walking and opening unlocked doors; this tool plans navigation envs only",
    ),
}


@pytest.fixture
def storage(tmp_path, monkeypatch):
    """A storage folder holding a model folder ``m`` (a log.txt and log.csv only: each case fails before reading
    it) and a trained model ``G1``; the current folder is ``tmp_path/work``, with a sub-folder ``sub``, FIFOs
    (``fifo``, ``fifo.gif``, ``fifo.png``: a case must refuse them without opening them, which would block) and
    links to G1's folder and its status.pt."""
    storage = tmp_path / "storage"
    (storage / "m").mkdir(parents=True)
    (storage / "m" / "log.txt").write_text("# an existing model's log\n")
    (storage / "m" / "log.csv").write_text("update,frames\n1,10\n")
    (storage / "G1").mkdir()  # another model, trained
    (storage / "G1" / "status.pt").write_bytes(b"a trained model")
    (storage / "G1" / "log.csv").write_text("update,frames\n1,10\n")
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "link-to-status").symlink_to(storage / "G1" / "status.pt")
    (work / "linked-model").symlink_to(storage / "G1")
    for fifo in ("fifo", "fifo.gif", "fifo.png"):
        os.mkfifo(work / fifo)
    monkeypatch.setenv("TORCH_RL_STORAGE", str(storage))
    monkeypatch.chdir(work)
    return storage


def snapshot(*folders):
    return {
        str(path): (path.read_bytes() if path.is_file() else None, path.stat().st_mtime_ns)
        for folder in folders
        for path in sorted(Path(folder).rglob("*"))
    }


@pytest.fixture
def restore_process_state():
    """scripts.train.main run in this process sets torch's threads and signal handlers."""
    threads = torch.get_num_threads()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    torch.set_num_threads(threads)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def assert_one_line_error(stderr, pattern):
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert re.search(pattern, lines[0]), (pattern, lines[0])


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_with_its_exit_code_and_writes_nothing(
    case, storage, tmp_path, capsys, restore_process_state
):
    script, argv, code, pattern = CASES[case]
    if "--out-default-fifo" in argv:  # plot's default output, storage/plot.png, is a FIFO
        argv = [arg for arg in argv if arg != "--out-default-fifo"]
        os.mkfifo(storage / "plot.png")
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(script if "." in script else f"scripts.{script}").main(argv)
    assert exit_info.value.code == code
    assert_one_line_error(capsys.readouterr().err, pattern)
    assert snapshot(tmp_path) == before  # no model folder, log line, GIF or JSON file


def test_plot_when_storage_is_a_file(tmp_path, monkeypatch, capsys):
    from scripts import plot

    storage = tmp_path / "storage"
    storage.write_text("not a folder")
    monkeypatch.setenv("TORCH_RL_STORAGE", str(storage))
    with pytest.raises(SystemExit) as exit_info:
        plot.main(["--model", "m"])
    assert exit_info.value.code == 2
    assert_one_line_error(capsys.readouterr().err, r"the storage folder .*storage is a file, not a folder")
    assert storage.read_text() == "not a folder"


@pytest.mark.parametrize(
    "script, argv",
    [
        ("train", TRAIN),
        ("evaluate", EVALUATE),
        ("visualize", VISUALIZE),
        ("plot", ["--model", "m"]),
        ("export", ["--model", "m"]),
    ],
)
def test_an_empty_storage_variable_is_refused_instead_of_using_the_current_folder(
    script, argv, tmp_path, monkeypatch, capsys, restore_process_state
):
    monkeypatch.setenv("TORCH_RL_STORAGE", "")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"scripts.{script}").main(argv)
    assert exit_info.value.code == 2
    assert_one_line_error(
        capsys.readouterr().err, r"TORCH_RL_STORAGE is set but empty; set it to the folder .*storage/"
    )
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("script", ["train", "evaluate", "visualize", "plot", "export"])
def test_help_lists_the_exit_codes(script, capsys):
    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"scripts.{script}").main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    for code in ("0 done", "1 failed", "2 usage error", "130 interrupted by Ctrl-C or SIGTERM"):
        assert code in out, out


def test_a_valid_seed_at_the_top_of_the_range_trains(tmp_path, monkeypatch, capsys, restore_process_state):
    """The bound is not too strict: 2**32 - 1 plus the update and rank offsets still seeds numpy."""
    from scripts import train

    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    train.main([*TRAIN, *TINY, "--seed", str(2**32 - 1), "--frames", "32", "--frames-per-proc", "1e1"])
    assert torch.load(tmp_path / "m" / "status.pt", weights_only=False)["num_frames"] == 40


def test_an_env_whose_constructor_takes_no_render_mode_trains(tmp_path, monkeypatch, restore_process_state):
    from scripts import train

    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    train.main([*TRAIN, *TINY, "--env", f"{TEST_ENVS}:TorchRLTest-NoRenderMode-v0", "--frames", "32"])
    assert torch.load(tmp_path / "m" / "status.pt", weights_only=False)["num_frames"] == 32


@pytest.mark.parametrize(
    "env_id, what",
    [
        ("TorchRLTest-ShapeChanging-v0", r"an observation of shape \(3,\)"),
        ("TorchRLTest-StringObservation-v0", r"an observation of type str \('a string'\)"),
    ],
)
def test_an_observation_that_does_not_fit_the_space_is_one_line(
    env_id, what, tmp_path, monkeypatch, capsys, restore_process_state
):
    from scripts import train

    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        train.main([*TRAIN, *TINY, "--env", f"{TEST_ENVS}:{env_id}", "--frames", "64"])
    assert exit_info.value.code == 1
    assert_one_line_error(  # (gymnasium's own warnings go to pytest's warning capture here)
        capsys.readouterr().err,
        rf"env 0 \({env_id}\) raised in step: .*{what}, where its observation space is Box.*no checkpoint",
    )


def test_a_failure_before_the_first_checkpoint_does_not_claim_one(tmp_path, monkeypatch, capsys, restore_process_state):
    from scripts import train

    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        train.main([*TRAIN, *TINY, "--env", f"{TEST_ENVS}:TorchRLTest-NaNRewardAtOnce-v0"])
    assert exit_info.value.code == 1
    assert_one_line_error(capsys.readouterr().err, r"diverged at update 1: .*; no checkpoint was saved in .*m yet")
    assert not (tmp_path / "m" / "status.pt").exists()


def test_an_architecture_difference_never_reads_off_now_off():
    from utils.resume import describe_difference

    assert describe_difference("use_memory", True, False) == "memory (--recurrence > 1) was on, now off"
    assert describe_difference("use_memory", None, False) == "memory (--recurrence > 1) was not recorded, now off"
    assert describe_difference("use_text", "", False) == "--text was '', now off"


# ----------------------------------------------------------------------------------- trained model: gif, plot
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny MiniGrid model (2 updates), in its storage folder."""
    from scripts import train

    storage = tmp_path_factory.mktemp("storage")
    environ, threads = os.environ.copy(), torch.get_num_threads()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        os.environ["TORCH_RL_STORAGE"] = str(storage)
        train.main(
            ["--algo", "ppo", "--env", "MiniGrid-Empty-5x5-v0", "--model", "m", "--frames", "64", "--quiet"] + TINY
        )
    finally:
        os.environ.clear()
        os.environ.update(environ)
        torch.set_num_threads(threads)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    return storage


@pytest.mark.parametrize("name, written", [("agent", "agent.gif"), ("agent.gif", "agent.gif"), ("a.GIF", "a.GIF")])
def test_gif_name_gets_the_gif_suffix(trained, tmp_path, monkeypatch, capsys, name, written):
    from scripts import visualize

    monkeypatch.setenv("TORCH_RL_STORAGE", str(trained))
    monkeypatch.chdir(tmp_path)
    visualize.main(["--env", "MiniGrid-Empty-5x5-v0", "--model", "m", "--gif", name, "--pause", "0.01"])
    assert sorted(os.listdir(tmp_path)) == [written]  # and no temporary file left
    assert (tmp_path / written).read_bytes()[:4] == b"GIF8"
    assert capsys.readouterr().out.strip().endswith(f"frames written to {written}")


@pytest.mark.parametrize(
    "out, written",
    [("curves", "curves.png"), ("curves.svg", "curves.svg"), ("folder", "folder/plot.png")],
)
def test_plot_reports_the_file_it_wrote(trained, tmp_path, monkeypatch, capsys, out, written):
    from scripts import plot

    (tmp_path / "folder").mkdir()
    monkeypatch.setenv("TORCH_RL_STORAGE", str(trained))
    monkeypatch.chdir(tmp_path)
    assert plot.main(["--model", "m", "--out", out]) == os.path.join(*written.split("/"))
    assert (tmp_path / written).stat().st_size > 1000
    assert capsys.readouterr().out.strip().endswith(f"to {os.path.join(*written.split('/'))}")


EMPTY = ["--env", "MiniGrid-Empty-5x5-v0", "--model", "m"]
OUTPUTS = {
    # output flag: (script, arguments with OUT for the output file, what the file starts with)
    "evaluate --json": ("evaluate", [*EMPTY, "--episodes", "2", "--json"], b"{"),
    "visualize --gif": ("visualize", [*EMPTY, "--pause", "0", "--gif"], b"GIF8"),
    "plot --out": ("plot", ["--model", "m", "--out"], b"\x89PNG"),
}


@pytest.mark.parametrize("flag", list(OUTPUTS))
def test_an_output_that_is_a_link_is_replaced_not_written_through(trained, tmp_path, monkeypatch, flag):
    """The link is replaced by the new file (a rename), and the file it pointed to is untouched."""
    script, argv, magic = OUTPUTS[flag]
    (tmp_path / "victim").write_bytes(b"someone else's file")
    name = "out.gif" if flag == "visualize --gif" else "out.png" if flag == "plot --out" else "out.json"
    (tmp_path / name).symlink_to(tmp_path / "victim")
    monkeypatch.setenv("TORCH_RL_STORAGE", str(trained))
    monkeypatch.chdir(tmp_path)
    importlib.import_module(f"scripts.{script}").main([*argv, name])
    assert (tmp_path / "victim").read_bytes() == b"someone else's file"
    assert not (tmp_path / name).is_symlink() and (tmp_path / name).read_bytes().startswith(magic)
    assert sorted(os.listdir(tmp_path)) == sorted([name, "victim"])  # no temporary file left


def test_evaluate_shows_the_worst_episodes(trained, monkeypatch, capsys):
    from scripts import evaluate

    monkeypatch.setenv("TORCH_RL_STORAGE", str(trained))
    argv = ["--env", "MiniGrid-Empty-5x5-v0", "--model", "m", "--episodes", "6", "--procs", "2", "--workers", "0"]
    result = evaluate.main([*argv, "--worst-episodes-to-show", "3"])
    out = capsys.readouterr().out
    worst = sorted(range(6), key=lambda i: result["returns"][i])[:3]
    expected = [f"- episode {i}: return {result['returns'][i]:.3f}, {result['num_frames'][i]} frames" for i in worst]
    assert out.splitlines()[-4:] == ["3 worst episodes:", *expected], out
    evaluate.main([*argv, "--worst-episodes-to-show", "10"])  # more than --episodes: all of them
    assert "6 worst episodes:" in capsys.readouterr().out
    evaluate.main(argv)
    assert "worst" not in capsys.readouterr().out


def test_visualize_shift_resets_the_env_before_the_first_episode(trained, tmp_path, monkeypatch, capsys):
    from scripts import visualize

    resets = []
    make_render_env = visualize.make_render_env

    def counting_resets(*args, **kwargs):
        env = make_render_env(*args, **kwargs)
        reset = env.reset

        def record(**kw):
            obs, info = reset(**kw)
            resets.append((kw.get("seed"), obs["image"].tobytes()))
            return obs, info

        env.reset = record
        return env

    monkeypatch.setattr(visualize, "make_render_env", counting_resets)
    monkeypatch.setenv("TORCH_RL_STORAGE", str(trained))
    argv = ["--env", "MiniGrid-Empty-5x5-v0", "--model", "m", "--gif", str(tmp_path / "a.gif"), "--seed", "4"]
    visualize.main([*argv, "--episodes", "3", "--pause", "0"])
    unshifted, resets[:] = list(resets), []
    visualize.main([*argv, "--shift", "2", "--pause", "0"])
    assert [seed for seed, _ in resets] == [4, None, None]  # the seed's reset, then 2 more: the third layout
    assert resets[-1][1] == unshifted[2][1]
    assert "episode 1: return" in capsys.readouterr().out


# ------------------------------------------------------------------------------------- real processes
def run(args, storage, timeout=120):
    env = {**os.environ, "TORCH_RL_STORAGE": str(storage), "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize("workers", ["0", "2"], ids=["in-process envs (watchdog)", "worker processes"])
def test_a_hanging_env_stops_training_with_one_line_naming_it_and_keeps_the_checkpoint(tmp_path, workers):
    # 2 envs x 16 frames per update: updates 1 and 2 are saved, the envs hang in update 3 (their 41st step).
    start = time.time()
    result = run(
        [
            "scripts.train",
            "--algo",
            "ppo",
            "--env",
            f"{TEST_ENVS}:{HANGING}",
            "--model",
            "m",
            "--frames",
            "100000",
            "--save-interval",
            "1",
            "--workers",
            workers,
            "--env-timeout",
            "1",
            "--quiet",
            *TINY,
        ],
        tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert_one_line_error(
        result.stderr,
        rf"env [01] \({HANGING}\) did not return from step within 1 s \(at its step 41\).*"
        rf"the last checkpoint in .*m is kept",
    )
    assert time.time() - start < 60
    status = torch.load(tmp_path / "m" / "status.pt", weights_only=False)
    assert status["update"] == 2 and status["num_frames"] == 64


@pytest.mark.parametrize("workers", ["0", "1"], ids=["in-process envs (watchdog)", "a worker process"])
def test_a_hanging_env_stops_evaluate_with_one_line_naming_it(tmp_path, workers, monkeypatch, restore_process_state):
    from scripts import train

    # A model of the hanging env's spaces: 2 envs x 16 frames, before the envs hang (their 41st step).
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    train.main([*TRAIN, *TINY, "--env", f"{TEST_ENVS}:{HANGING}", "--frames", "32"])
    # run's time-out (120 s) fails the test if the evaluation hangs
    result = run(
        ["scripts.evaluate", "--env", f"{TEST_ENVS}:{HANGING}", "--model", "m", "--episodes", "100", "--procs", "1"]
        + ["--workers", workers, "--env-timeout", "1"],
        tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert_one_line_error(result.stderr, rf"env 0 \({HANGING}\) did not return from step within 1 s \(at its step 41\)")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"])
def test_an_interrupt_while_starting_up_is_one_line_and_exit_130(tmp_path, signum):
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.train", *TRAIN, "--frames", "100000000"],
        cwd=REPO,
        env={**os.environ, "TORCH_RL_STORAGE": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.3)  # importing torch takes longer than that
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert stderr == "error: interrupted\n", stderr
    assert not (tmp_path / "m").exists()


# A program's start-up as scripts/__init__.py sets it up, then an import that swallows KeyboardInterrupt (a library
# may catch BaseException, or clear the error in C) while the signal arrives, then main under cli.
SWALLOWING_START_UP = """
import os, signal, sys, time
sys.argv = ["-m"]
import scripts
try:
    os.kill(os.getpid(), signal.SIG{name})
    time.sleep(5)
except BaseException:
    pass
from utils.errors import cli
cli(lambda argv: print("main ran"))()
"""


@pytest.mark.parametrize("name", ["INT", "TERM"])
def test_an_interrupt_during_the_imports_ends_the_program_even_if_an_import_swallows_it(name):
    result = subprocess.run(
        [sys.executable, "-c", SWALLOWING_START_UP.format(name=name)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (result.returncode, result.stderr, result.stdout) == (130, "error: interrupted\n", "")


def test_parallel_env_timeout_argument():
    import torch_rl

    with pytest.raises(ValueError, match="timeout"):
        torch_rl.ParallelEnv([FixedLengthEnv()], num_workers=0, timeout=0)
    env = torch_rl.ParallelEnv([FixedLengthEnv()], num_workers=0, timeout=None)  # no limit, no watchdog
    try:
        assert env.watchdog is None
        obs, *_ = env.step(np.zeros(1, np.int64))
        assert obs.tolist() == [[1.0]]
    finally:
        env.close()
    # in this process a time limit can only end the process: a library does that only when its caller asks
    env = torch_rl.ParallelEnv([FixedLengthEnv()], num_workers=0, timeout=5.0)
    try:
        assert env.watchdog is None
    finally:
        env.close()
    env = torch_rl.ParallelEnv([FixedLengthEnv()], num_workers=0, timeout=5.0, on_timeout=print)
    try:
        assert env.watchdog is not None and env.watchdog.is_alive()
    finally:
        env.close()


def test_a_second_sigterm_does_not_cut_the_save_short(tmp_path):
    """Schedulers send SIGTERM again after a while: the run still ends with 130 and a checkpoint in step with its
    log."""
    import csv

    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.train", *TRAIN, *TINY, "--frames", "100000000", "--save-interval", "2"],
        cwd=REPO,
        env={**os.environ, "TORCH_RL_STORAGE": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while not (tmp_path / "m" / "status.pt").exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        for _ in range(5):
            time.sleep(0.005)
            process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    status = torch.load(tmp_path / "m" / "status.pt", weights_only=False)
    with open(tmp_path / "m" / "log.csv", newline="") as f:
        last = list(csv.reader(f))[-1]
    assert [int(last[0]), int(last[1])] == [status["update"], status["num_frames"]]


def test_a_stopped_and_continued_run_is_not_taken_for_a_hung_env(tmp_path):
    """Ctrl-Z (SIGSTOP) in an env step for longer than --env-timeout, then fg (SIGCONT): training goes on."""
    slow = ["--env", f"{TEST_ENVS}:TorchRLTest-Slow-v0", "--frames", "100000000", "--env-timeout", "1"]
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.train", *TRAIN, *TINY, *slow],
        cwd=REPO,
        env={**os.environ, "TORCH_RL_STORAGE": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while not (tmp_path / "m" / "log.csv").exists() and time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
        process.send_signal(signal.SIGSTOP)
        time.sleep(4)
        process.send_signal(signal.SIGCONT)
        time.sleep(2)
        assert process.poll() is None, process.stderr.read()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads signal dispositions from /proc")
def test_env_workers_die_at_sigterm_whatever_handler_the_main_process_has():
    """Under ``python -m scripts.X`` SIGTERM raises KeyboardInterrupt in the main process; a worker must not inherit
    that, or ParallelEnv.close() could not stop one stuck in C code."""
    import torch_rl

    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        env = torch_rl.ParallelEnv([FixedLengthEnv(), FixedLengthEnv()], num_workers=2)
    finally:
        signal.signal(signal.SIGTERM, previous)
    try:
        env.reset(seed=0)  # the workers are in their loop
        for process in env.processes:
            with open(f"/proc/{process.pid}/status") as f:
                caught = int(re.search(r"SigCgt:\s*([0-9a-f]+)", f.read()).group(1), 16)
            assert not caught & (1 << (signal.SIGTERM - 1)), f"worker {process.pid} handles SIGTERM"
    finally:
        env.close()
