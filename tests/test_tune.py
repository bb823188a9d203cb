"""scripts.tune: a tiny study end to end, a study killed with -9 resumes, a pruned trial stopped early, bad input is
one line; and the hyper-parameter table it samples from."""

import contextlib
import inspect
import os
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib

import pytest

optuna = pytest.importorskip("optuna")

from scripts import tune  # noqa: E402
from utils.hyperparams import HYPERPARAMS, RECIPE_KEYS, check_search_spaces, searched  # noqa: E402
from utils.recipes import check_recipe  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "MiniGrid-Empty-5x5-v0"  # batched: a trial of 1,024 frames takes about a second
TINY = ["--env", ENV, "--frames", "1024", "--procs", "4", "--evals", "2", "--eval-episodes", "4"]


@pytest.fixture
def storage(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    return tmp_path


def load(storage, name=f"tune/{ENV}"):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{storage / name / 'study.db'}")


def test_a_tiny_study_runs_end_to_end(storage, capsys):
    tune.main([*TINY, "--trials", "3"])
    out = capsys.readouterr().out
    study = load(storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    assert all(t.user_attrs["frames"] >= 1024 for t in study.trials)
    folder = storage / "tune" / ENV
    for name in ("trials.csv", "history.png", "importances.png"):
        assert (folder / name).stat().st_size > 0, name
    assert len((folder / "trials.csv").read_text().splitlines()) == 4
    # the block pastes into recipes/ppo.toml: it is TOML, and a recipe that the recipe checks accept
    block = out[out.index("# python -m scripts.tune") :]
    recipe = tomllib.loads(block)[ENV]
    assert check_recipe(recipe, "the block") == recipe
    best = study.best_trial
    assert all(recipe[name] == value for name, value in best.params.items())
    assert recipe["batched"] is True and recipe["frames"] == 1024


def test_a_pruned_trial_stops_before_its_budget(storage, monkeypatch, capsys):
    class AlwaysPrune(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    monkeypatch.setattr(tune, "make_pruner", lambda startup_trials: AlwaysPrune())
    tune.main([*TINY, "--trials", "1"])
    (trial,) = load(storage).trials
    assert trial.state.name == "PRUNED"
    assert trial.user_attrs["frames"] < 1024  # stopped at the first of 2 evaluations
    assert "no trial completed yet" in capsys.readouterr().out


def completed_trials(db):
    """How many trials of the study database ``db`` have completed, read through a read-only SQLite connection: the
    study's process may be creating its tables at that moment, and Optuna's own loader would try to create them
    too ("table studies already exists"); before the tables exist, 0."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as connection:
            return connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_study_killed_with_minus_9_resumes(storage):
    env = dict(os.environ, TORCH_RL_STORAGE=str(storage))
    command = [sys.executable, "-m", "scripts.tune", *TINY]
    process = subprocess.Popen([*command, "--trials", "50"], cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    db = storage / "tune" / ENV / "study.db"
    try:
        # waits for the first finished trial, however long it takes (the test's own timeout is the bound)
        while not (db.exists() and completed_trials(db) > 0):
            assert process.poll() is None, "the study ended before it was killed"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = {t.number: t.params for t in load(storage).trials if t.state.name == "COMPLETE"}
    subprocess.run([*command, "--trials", str(len(before) + 1)], cwd=ROOT, env=env, check=True, capture_output=True)
    trials = load(storage).trials
    after = {t.number: t.params for t in trials if t.state.name == "COMPLETE"}
    assert len(after) == len(before) + 1 and all(after[number] == params for number, params in before.items())
    assert max(after) > max(before)  # the count went on: a new trial, not the first one again


BAD = {
    "no env": ([], "--env"),
    "unknown env": (["--env", "Nope-v0"], "unknown environment 'Nope-v0'"),
    "no trials": (["--env", ENV, "--trials", "0"], "--trials: must be an integer"),
    "too many jobs": (["--env", ENV, "--jobs", "1024"], "--jobs 1024 is more than the"),
    "escaping study": (["--env", ENV, "--study", "../out"], "--study '../out' is not a folder name under storage"),
    "bad storage": (["--env", ENV, "--storage", "nosuchdb://x"], "cannot open the study"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2(case, storage, capsys):
    argv, fragment = BAD[case]
    with pytest.raises(SystemExit) as exit_info:
        tune.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and fragment in err, err
    assert not (storage / "tune").exists() or case == "bad storage"


def test_a_resumed_study_must_keep_its_setup(storage, capsys):
    tune.main([*TINY, "--trials", "1"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        tune.main([*TINY, "--trials", "2", "--procs", "8"])
    assert exit_info.value.code == 2
    assert "procs was 4, now 8" in capsys.readouterr().err


# --------------------------------------------------------------------------------------- the table
def test_each_searched_value_passes_its_flags_checks_and_is_a_recipe_key():
    check_search_spaces()
    assert searched("ppo") and all(param.name in RECIPE_KEYS for param in searched("ppo"))


def test_every_constructor_argument_of_the_table_exists():
    import torch_rl

    for algo, cls in (("a2c", torch_rl.A2CAlgo), ("ppo", torch_rl.PPOAlgo)):
        parameters = inspect.signature(cls.__init__).parameters
        for param in HYPERPARAMS:
            arg = param.arg_for(algo)
            assert arg is None or arg in parameters, (algo, param.name, arg)
