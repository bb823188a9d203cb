"""benchmarks.learning's suite mode (benchmarks/suite.py): the target crossing, the summary of an env's seeds, its
markdown row, and a report assembled from kept runs, without training; one tiny end-to-end run (slow)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import suite
from benchmarks.learning import first_crossing
from utils.errors import UsageError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MACHINE = {"cpus": 2, "cpu": "Test CPU", "torch": "2.0", "device": "cpu"}


def fake_run(env_id, seed, settings, solved_at, success=1.0, wall=10.0):
    """A kept run's record, as suite.record_run writes it."""
    curve = [(1000 * i, 0.0) for i in range(1, 4)]
    if solved_at is not None:
        curve.append((solved_at, 1.0))
    return {
        "env": env_id,
        "seed": seed,
        "settings": settings,
        "key": suite.settings_key(settings),
        "command": "python -m scripts.train ...",
        "model_dir": None,
        "solved_at": solved_at,
        "curve": curve,
        "wall": wall,
        "machine": MACHINE,
        "evaluation": {"return_mean": 0.9 * success, "success_rate": success},
    }


def test_the_crossing_is_the_first_update_whose_rolling_mean_of_5_reaches_the_threshold():
    curve = [(i * 100, r) for i, r in enumerate([0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], start=1)]
    # rolling means over 5: 0.7 (at 500), 0.9 (at 600), 1.0 (at 700)
    assert first_crossing(curve, 0.9) == 600
    assert first_crossing(curve, 0.95) == 700
    assert first_crossing(curve, 1.01) is None
    assert first_crossing(curve[:4], 0.0) is None  # fewer than 5 logged updates: not decided


def test_settings_are_the_recipe_with_a_frames_override_and_none_without_a_recipe():
    recipes = {"E-v0": {"procs": 4, "frames": 1000}}
    assert suite.settings_for("E-v0", recipes) == {"recipe": True, "procs": 4, "frames": 1000}
    assert suite.settings_for("E-v0", recipes, frames=50)["frames"] == 50
    assert suite.settings_for("MiniGrid-FourRooms-v0", recipes) is None
    # defaults, with the issue's target frames as the budget (FourRooms: 5M) or --frames
    assert suite.settings_for("MiniGrid-FourRooms-v0", recipes, allow_defaults=True) == {
        "recipe": False,
        "frames": 5_000_000,
    }
    assert suite.settings_for("MiniGrid-FourRooms-v0", recipes, 64, True)["frames"] == 64
    with pytest.raises(UsageError, match="--frames"):
        suite.settings_for("Unknown-v0", recipes, allow_defaults=True)  # no recipe, no target frames
    assert suite.settings_key({"a": 1, "b": 2}) == suite.settings_key({"b": 2, "a": 1})
    assert suite.settings_key({"a": 1}) != suite.settings_key({"a": 2})


def test_the_suite_table_holds_the_issues_targets():
    assert suite.SUITE_BY_ID["MiniGrid-DoorKey-8x8-v0"].target_frames == 500_000
    assert suite.SUITE_BY_ID["MiniGrid-ObstructedMaze-2Dlh-v0"].target_frames == 20_000_000
    assert suite.SUITE_BY_ID["MiniGrid-FourRooms-v0"].threshold == 0.6
    assert suite.SUITE_BY_ID["MiniGrid-MemoryS13-v0"].kind == "success"
    assert len(suite.SUITE) == 12


def summary_of(env_id, solved, success=1.0):
    settings = {"recipe": True, "frames": 1_000_000}
    runs = [fake_run(env_id, seed, settings, at, success) for seed, at in enumerate(solved, start=1)]
    return suite.summarize_env(suite.suite_env(env_id), settings, runs)


def test_the_summary_gives_median_and_worst_frames_and_whether_the_target_is_met():
    doorkey = "MiniGrid-DoorKey-8x8-v0"  # target: 500k frames
    s = summary_of(doorkey, [300_000, 100_000, 400_000])
    assert (s["solved"], s["median_frames"], s["worst_frames"], s["met"]) == (3, 300_000, 400_000, "yes")
    s = summary_of(doorkey, [300_000, 100_000, 600_000])
    assert (s["median_frames"], s["worst_frames"], s["met"]) == (300_000, 600_000, "median only")
    s = summary_of(doorkey, [600_000, 700_000, 100_000])
    assert s["met"] == "no"
    # a seed that never reaches the threshold: no worst; the median counts it as never
    s = summary_of(doorkey, [100_000, None, 200_000])
    assert (s["solved"], s["median_frames"], s["worst_frames"], s["met"]) == (2, 200_000, None, "median only")
    s = summary_of(doorkey, [None, None, 100_000])
    assert (s["median_frames"], s["met"]) == (None, "no")
    assert summary_of(doorkey, [600_000, None, 700_000])["met"] == "no"
    # a success target also needs the evaluation's success rate
    assert summary_of("MiniGrid-MemoryS13-v0", [100_000, 200_000], success=0.95)["met"] == "yes"
    assert summary_of("MiniGrid-MemoryS13-v0", [100_000, 200_000], success=0.8)["met"].startswith("no")
    s = summary_of(doorkey, [100_000])
    assert (s["eval_return"], s["eval_success"], s["wall_s"]) == (0.9, 1.0, 10.0)


def test_a_markdown_row_has_every_column():
    recipes = {"MiniGrid-DoorKey-8x8-v0": {"frames": 1_000_000}}
    machines = {suite.machine_key(MACHINE): "A"}
    row = suite.markdown_row(summary_of("MiniGrid-DoorKey-8x8-v0", [300_000, 400_000]), recipes, machines)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == [
        "MiniGrid-DoorKey-8x8-v0",
        "return >= 0.9 within 500k frames",
        "recipe",
        "2/2 within 1000k",
        "300k",
        "400k",
        "yes",
        "0.90",
        "1.00",
        "10 s (max 10 s)",
        "A",
    ]
    empty = suite.summarize_env(suite.suite_env("MiniGrid-FourRooms-v0"), None, [])
    cells = [c.strip() for c in suite.markdown_row(empty, recipes, machines).strip("|").split("|")]
    assert cells[3] == "no recipe yet" and len(cells) == 11


def strip_table(toml_text, env_id):
    """A recipes file's text without the table of ``env_id``."""
    lines, skipping = [], False
    for line in toml_text.splitlines():
        if line.startswith("["):
            skipping = line == f'["{env_id}"]'
        if not skipping:
            lines.append(line)
    return "\n".join(lines) + "\n"


def test_the_report_is_assembled_from_kept_runs_of_the_current_settings_only(tmp_path, monkeypatch):
    env_id = "torch_rl/CueCorridor-v0"  # has a recipe in recipes/ppo.toml
    # the report of an env without a recipe: the recipes file less the suite's first env
    no_recipe = suite.SUITE[0]
    recipes_file = tmp_path / "ppo.toml"
    recipes_file.write_text(strip_table(Path(suite.recipes_path("ppo")).read_text(), no_recipe.env_id))
    monkeypatch.setattr(suite, "recipes_path", lambda algo: str(recipes_file))
    recipes = suite.load_recipes(str(recipes_file))
    current = suite.settings_for(env_id, recipes)
    runs_dir = tmp_path / "runs"
    for seed, at in ((1, 40_000), (2, 60_000), (7, 50_000)):  # seeds kept by separate invocations
        suite.save_run(str(runs_dir), fake_run(env_id, seed, current, at))
    stale = current | {"lr": 0.5}  # a run of an older recipe
    suite.save_run(str(runs_dir), fake_run(env_id, 3, stale, 1_000))
    out = tmp_path / "docs"
    suite.main(["--collect", "--envs", env_id, "--runs-dir", str(runs_dir), "--out", str(out)])
    text = (out / "SUITE.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| {env_id} "))
    assert "| 3/3 within 400k | 50k | 60k |" in row
    assert "seeds 1, 2, 7" in text
    assert f"| {no_recipe.env_id} | {no_recipe.anchor} | - | no recipe yet |" in text
    assert "2 CPU cores (Test CPU)" in text
    assert (out / "suite_curves.png").stat().st_size > 0
    assert "suite_findings.md" not in text  # no findings written by hand in this folder: no link to them


def test_the_report_links_the_findings_written_by_hand_when_they_exist(tmp_path):
    out = tmp_path / "docs"
    out.mkdir()
    (out / suite.FINDINGS).write_text("# What was tried\n")
    suite.main(["--collect", "--runs-dir", str(tmp_path / "runs"), "--out", str(out)])
    assert f"[{suite.FINDINGS}]({suite.FINDINGS})" in (out / "SUITE.md").read_text()


def test_an_imported_model_must_have_trained_with_the_suites_settings(tmp_path, monkeypatch):
    class Loaded:
        config = {"args": {"env": "E-v0", "seed": 1, "algo": "ppo", "procs": 16, "frames": 1000}}

    from utils import checkpoint

    monkeypatch.setattr(checkpoint, "load", lambda model_dir: Loaded)
    monkeypatch.setattr(suite, "record_run", lambda *args, **kwargs: fake_run("E-v0", 1, settings, 1))
    settings = {"recipe": True, "procs": 64, "frames": 1000}
    with pytest.raises(UsageError, match="procs 16 \\(the suite: 64\\)"):
        suite.import_run("E-v0", 1, str(tmp_path), settings, str(tmp_path / "runs"))
    with pytest.raises(UsageError, match="seed 1 \\(the suite: 2\\)"):
        suite.import_run("E-v0", 2, str(tmp_path), settings | {"procs": 16}, str(tmp_path / "runs"))
    settings["procs"] = 16
    suite.import_run("E-v0", 1, str(tmp_path), settings, str(tmp_path / "runs"))
    assert len(suite.load_runs(str(tmp_path / "runs"))) == 1


@pytest.mark.slow
def test_the_suite_mode_trains_evaluates_and_reports_end_to_end(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "docs"
    command = [sys.executable, "-m", "benchmarks.learning", "--suite", "--envs", "torch_rl/CueCorridor-v0"]
    command += ["--seeds", "1", "--frames", "2048", "--runs-dir", str(runs), "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    (kept,) = suite.load_runs(str(runs))
    assert kept["evaluation"]["episodes"] == 100  # on Minigrid's own env, 100 episodes
    assert kept["curve"] and kept["curve"][-1][0] == 2048 and kept["machine"]["device"] == "cpu"
    assert "| torch_rl/CueCorridor-v0 |" in (out / "SUITE.md").read_text()
