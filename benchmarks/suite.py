"""The MiniGrid suite of issue 17: each env trained with its recipe (recipes/ppo.toml), evaluated on Minigrid's
own env.

    python -m benchmarks.learning --suite [--envs ID ...] [--seeds N] [--first-seed S] [--runs-dir D]
    python -m benchmarks.learning --suite --collect [--runs-dir D]      # the report from the runs kept, no training
    python -m benchmarks.learning --suite --import-run ENV SEED MODEL_DIR   # add a run trained by hand

For each env and seed it trains `python -m scripts.train --algo ppo --env ID --seed S` with the env's recipe (its
`frames` is the budget; --frames overrides it for a smoke run) and --stop-at-return at the env's threshold, so a
solved seed stops early, then evaluates the model with `python -m scripts.evaluate` on Minigrid's own env (100
episodes; a model trained --batched too: both backends give the same observations). Each run is kept in
--runs-dir (its model under models/, its result as suite-ENV-seedS-KEY.json, KEY naming the settings), so that
an interrupted run resumes, seeds run in parallel invocations, and the report is assembled from every kept run
whose settings are the current recipe's. The report (SUITE.md, suite_curves.png in --out) covers every env of
the suite: an env without a recipe is "no recipe yet" (--allow-defaults trains one named by --envs with the
starter defaults).
"""

import argparse
import csv
import dataclasses
import glob
import hashlib
import json
import os
import platform
import re
import statistics
import sys
import time

from benchmarks.learning import (
    REPO,
    curve_of,
    evaluate_model,
    first_crossing,
    fmt_frames,
    plot_panels,
    read_curve,
    run,
)
from utils.env import check_env_id
from utils.errors import ArgumentParser, UsageError, cli
from utils.recipes import load_recipes, recipes_path


@dataclasses.dataclass(frozen=True)
class SuiteEnv:
    env_id: str
    kind: str  # "return": the mean return reaches threshold; "success": the success rate does
    threshold: float
    target_frames: int | None  # the budget for reaching it (None: none given)
    anchor: str  # the target in the words


# The envs and targets: frames to a mean return of 0.9 unless stated.
SUITE = [
    SuiteEnv("MiniGrid-DoorKey-8x8-v0", "return", 0.9, 500_000, "return >= 0.9 within 500k frames"),
    SuiteEnv("MiniGrid-DoorKey-16x16-v0", "return", 0.9, 3_000_000, "return >= 0.9 within 3M frames"),
    SuiteEnv("MiniGrid-KeyCorridorS3R3-v0", "return", 0.9, 5_000_000, "return >= 0.9 within 5M frames"),
    SuiteEnv("MiniGrid-KeyCorridorS4R3-v0", "return", 0.9, 15_000_000, "return >= 0.9 within 15M frames"),
    # 0.9 is out of reach here: the best possible mean return is 0.754 (python -m benchmarks.ceiling), so the
    # target is 90% of it
    SuiteEnv(
        "MiniGrid-MultiRoom-N4-S5-v0",
        "return",
        0.68,
        5_000_000,
        "return >= 0.68 within 5M frames (issue: 0.9; best possible 0.754)",
    ),
    SuiteEnv("MiniGrid-ObstructedMaze-2Dlh-v0", "return", 0.9, 20_000_000, "return >= 0.9 within 20M frames"),
    SuiteEnv("MiniGrid-LavaCrossingS9N2-v0", "return", 0.9, 2_000_000, "return >= 0.9 within 2M frames"),
    SuiteEnv("MiniGrid-FourRooms-v0", "return", 0.6, 5_000_000, "return >= 0.6 within 5M frames"),
    SuiteEnv("MiniGrid-MemoryS13-v0", "success", 0.9, None, "success >= 0.9"),
    SuiteEnv("MiniGrid-UnlockPickup-v0", "return", 0.9, 2_000_000, "return >= 0.9 within 2M frames"),
    SuiteEnv("MiniGrid-BlockedUnlockPickup-v0", "return", 0.9, 2_000_000, "return >= 0.9 within 2M frames"),
    SuiteEnv("MiniGrid-RedBlueDoors-8x8-v0", "return", 0.9, 2_000_000, "return >= 0.9 within 2M frames"),
]
SUITE_BY_ID = {spec.env_id: spec for spec in SUITE}
EVAL_EPISODES = 100
FINDINGS = "suite_findings.md"
DEFAULT_RUNS_DIR = os.path.join(REPO, "storage", "suite")


def suite_env(env_id):
    """The suite's target for ``env_id``; an env outside the suite gets return >= 0.9 and no target frames."""
    return SUITE_BY_ID.get(env_id) or SuiteEnv(env_id, "return", 0.9, None, "return >= 0.9 (not in issue 17)")


def settings_for(env_id, recipes, frames=None, allow_defaults=False):
    """What a run of ``env_id`` trains with: ``{"recipe": True, **recipe}`` (``frames`` overriding its budget), or,
    with ``allow_defaults`` and no recipe, the starter defaults ``{"recipe": False, "frames": ...}``; None when
    the env has no recipe and defaults are not allowed."""
    recipe = recipes.get(env_id)
    if recipe is None:
        if not allow_defaults:
            return None
        budget = frames or suite_env(env_id).target_frames
        if budget is None:
            raise UsageError(f"{env_id} has no recipe and no target frames to use as a budget: give --frames N")
        return {"recipe": False, "frames": budget}
    settings = {"recipe": True, **recipe} | ({"frames": frames} if frames else {})
    if "frames" not in settings:
        if suite_env(env_id).target_frames is None:
            raise UsageError(f"the recipe of {env_id} has no frames and the suite no target frames: give --frames N")
        settings["frames"] = suite_env(env_id).target_frames
    return settings


def settings_key(settings):
    """A short name for ``settings``: runs with the same key trained the same way."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def run_name(env_id, seed, settings):
    """The run's model folder name and cache file stem."""
    return f"suite-{re.sub(r'[^A-Za-z0-9._-]', '_', env_id)}-seed{seed}-{settings_key(settings)}"


def train_command(env_id, seed, settings, model):
    """The scripts.train command of a run (the recipe applies by itself; --frames sets its budget)."""
    return (
        f"python -m scripts.train --algo ppo --env {env_id} --model {model} --seed {seed} "
        f"--frames {settings['frames']} --stop-at-return {suite_env(env_id).threshold:g} --quiet"
    ).split()


def suite_command(env_id, seeds, settings, recipes):
    """The benchmark command that reproduces an env's row."""
    command = f"python -m benchmarks.learning --suite --envs {env_id} --seeds {seeds}"
    if not settings["recipe"]:
        command += f" --allow-defaults --frames {settings['frames']}"
    elif settings["frames"] != recipes[env_id].get("frames"):
        command += f" --frames {settings['frames']}"
    return command


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device):
    """Where a run trained: CPU count and model, torch version, the device scripts.train used."""
    from importlib.metadata import version

    info = {"cpus": os.cpu_count(), "cpu": cpu_model(), "torch": version("torch"), "device": device}
    if device and device.startswith("cuda"):
        import torch

        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def training_log(model_dir):
    """(the command, the device, the training's duration in seconds) as the model folder's logs give them."""
    command, device, duration = None, None, None
    with open(os.path.join(model_dir, "log.txt")) as f:
        for line in f:
            if line.startswith("# python -m scripts.train") and command is None:
                command = line[2:].strip()
            elif line.startswith("# device "):
                device = line[len("# device ") :].split(",", 1)[0]
    with open(os.path.join(model_dir, "log.csv")) as f:
        lines = f.read().splitlines()
    if len(lines) > 1:
        duration = float(lines[-1].split(",")[3])  # the 4th column, duration: all sessions of a resumed run
    return command, device, duration


def record_run(env_id, seed, settings, model_dir, wall=None, imported=False):
    """A finished run's result: its curve, the frames to the target, the evaluation on Minigrid's own env."""
    storage, model = os.path.split(os.path.abspath(model_dir))
    curve = read_curve(os.path.join(model_dir, "log.csv"))
    command, device, duration = training_log(model_dir)
    env = dict(os.environ, TORCH_RL_STORAGE=storage, OMP_NUM_THREADS="1")
    evaluation = evaluate_model(env_id, model, seed, env, EVAL_EPISODES)
    keep = ("episodes", "seed", "return_mean", "return_std", "success_rate", "num_frames_mean")
    return {
        "env": env_id,
        "seed": seed,
        "settings": settings,
        "key": settings_key(settings),
        "command": command,
        "model_dir": model_dir if imported else None,
        "solved_at": first_crossing(curve, suite_env(env_id).threshold),
        "curve": curve,
        "wall": duration if duration is not None else wall,
        "machine": machine(device),
        "evaluation": {k: evaluation[k] for k in keep},
    }


def save_run(runs_dir, record):
    os.makedirs(runs_dir, exist_ok=True)
    path = os.path.join(runs_dir, f"{run_name(record['env'], record['seed'], record['settings'])}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)  # a parallel --collect never reads half a file


def load_runs(runs_dir):
    """Every run kept in ``runs_dir``."""
    runs = []
    for path in sorted(glob.glob(os.path.join(glob.escape(runs_dir), "suite-*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    return runs


def finished(model_dir, budget, threshold):
    """Whether the model's training already ended (reached the threshold or the budget): an invocation stopped
    while evaluating it then evaluates it again rather than training it further."""
    try:
        with open(os.path.join(model_dir, "log.csv")) as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        return False
    return bool(rows) and (int(rows[-1]["frames"]) >= budget or first_crossing(curve_of(rows), threshold) is not None)


def train_run(env_id, seed, settings, runs_dir):
    """Trains (or resumes, if an earlier invocation was stopped) and evaluates one seed; its result is kept."""
    models = os.path.join(runs_dir, "models")
    name = run_name(env_id, seed, settings)
    env = dict(os.environ, TORCH_RL_STORAGE=models, OMP_NUM_THREADS="1")
    start = time.time()
    if not finished(os.path.join(models, name), settings["frames"], suite_env(env_id).threshold):
        run([sys.executable, *train_command(env_id, seed, settings, name)[1:]], env)
    record = record_run(env_id, seed, settings, os.path.join(models, name), wall=time.time() - start)
    save_run(runs_dir, record)
    return record


def import_run(env_id, seed, model_dir, settings, runs_dir):
    """Adds a run trained by hand (a model folder with log.csv) after checking it trained ``env_id`` with
    ``seed`` and ``settings``."""
    from utils import checkpoint as checkpoints

    args = checkpoints.load(model_dir).config.get("args", {})
    wanted = {"env": env_id, "seed": seed, "algo": "ppo"} | {k: v for k, v in settings.items() if k != "recipe"}
    differ = [f"{k} {args.get(k)!r} (the suite: {v!r})" for k, v in wanted.items() if args.get(k) != v]
    if differ:
        raise UsageError(f"the model in {model_dir} was not trained as the suite trains it: {'; '.join(differ)}")
    record = record_run(env_id, seed, settings, model_dir, imported=True)
    save_run(runs_dir, record)
    return record


def summarize_env(spec, settings, runs):
    """An env's row: seeds solved, frames to the target (median over seeds, counting an unsolved seed as never;
    worst), met or not against the issue's frames, the evaluations' means, wall time per seed."""
    summary = {"env": spec.env_id, "spec": spec, "settings": settings, "seeds": len(runs), "runs": runs}
    if settings is None or not runs:
        return summary | {"status": "no recipe yet" if settings is None else "not run yet"}
    reached = [r["solved_at"] if r["solved_at"] is not None else float("inf") for r in runs]
    median, worst = statistics.median_low(reached), max(reached)
    success = [r["evaluation"]["success_rate"] for r in runs]
    summary |= {
        "status": "run",
        "solved": sum(x != float("inf") for x in reached),
        "median_frames": None if median == float("inf") else median,
        "worst_frames": None if worst == float("inf") else worst,
        "eval_return": statistics.mean(r["evaluation"]["return_mean"] for r in runs),
        "eval_success": statistics.mean(success),
        "wall_s": statistics.mean(r["wall"] for r in runs),
        "wall_max_s": max(r["wall"] for r in runs),
    }
    summary["met"] = met(spec, summary)
    return summary


def met(spec, summary):
    """Whether the issue's target is met: every seed reaches it within the target frames ("yes"), or the median
    seed does ("median only", also when a seed never reached it); for a success target, the evaluation's success
    rate too."""
    if summary["median_frames"] is None:
        return "no"
    if spec.kind == "success" and summary["eval_success"] < spec.threshold:
        return f"no (eval success {summary['eval_success']:.2f})"
    worst = summary["worst_frames"]  # None: a seed never reached the threshold
    if worst is not None and (spec.target_frames is None or worst <= spec.target_frames):
        return "yes"
    # the targets are on the median over seeds
    if spec.target_frames is None or summary["median_frames"] <= spec.target_frames:
        return "median only"
    return "no"


def settings_words(settings, recipes, env_id):
    if settings is None:
        return "-"
    if not settings["recipe"]:
        return "starter defaults"
    return "recipe" if settings["frames"] == recipes[env_id].get("frames") else f"recipe, --frames {settings['frames']}"


def markdown_row(summary, recipes, machines):
    spec, settings = summary["spec"], summary["settings"]
    head = f"| {spec.env_id} | {spec.anchor} | {settings_words(settings, recipes, spec.env_id)} |"
    if summary["status"] != "run":
        return head + f" {summary['status']} |" + " |" * 7
    runs = summary["runs"]
    labels = sorted({machines[machine_key(r["machine"])] for r in runs})
    return head + (
        f" {summary['solved']}/{summary['seeds']} within {fmt_frames(settings['frames'])} "
        f"| {fmt_frames(summary['median_frames'])} | {fmt_frames(summary['worst_frames'])} | {summary['met']} "
        f"| {summary['eval_return']:.2f} | {summary['eval_success']:.2f} "
        f"| {summary['wall_s']:.0f} s (max {summary['wall_max_s']:.0f} s) | {', '.join(labels)} |"
    )


def machine_key(machine_info):
    return json.dumps(machine_info, sort_keys=True)


def describe_machine(info):
    gpu = f" ({info['gpu']})" if info.get("gpu") else ""
    return f"{info['cpus']} CPU cores ({info['cpu']}), torch {info['torch']}, device {info['device']}{gpu}"


def write_report(summaries, recipes, out_dir):
    """SUITE.md and suite_curves.png in ``out_dir``; the markdown."""
    runs = [r for s in summaries for r in s["runs"]]
    machines = {}
    for r in runs:
        machines.setdefault(machine_key(r["machine"]), chr(ord("A") + len(machines)))
    lines = [
        "# The MiniGrid suite (issue 17)",
        "",
        "Each env trains `python -m scripts.train --algo ppo` with its recipe (`recipes/ppo.toml`, whose `frames` is "
        "the budget) and `--stop-at-return` at its threshold, once per seed. Frames = the first update where the "
        "rolling mean (5 logged updates) of the training's mean episode return reaches the threshold (for a success "
        "target, a return of 0.9 implies a success rate of at least 0.9: a MiniGrid success earns at most 1, a "
        f"failure 0). Eval = `python -m scripts.evaluate` of the final model on Minigrid's own env, {EVAL_EPISODES} "
        "episodes, seed 10000 + the training seed, mean over seeds (a model trained `--batched` too). Median frames "
        "count a seed that never reached the threshold as never; worst is '-' unless every seed reached it. Met: every "
        "seed within the issue's frames (median only: the median seed, the issue's measure). A run added with "
        "`--import-run` is credited to the machine that imported it.",
        "",
        "| env | target (issue 17) | settings | seeds solved | median frames | worst frames | met | eval return "
        "| eval success | train wall/seed | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [markdown_row(s, recipes, machines) for s in summaries]
    if os.path.exists(os.path.join(out_dir, FINDINGS)):
        # written by hand: what was tried for each env, including the settings that did not reach the target
        lines += ["", f"What was tried on each env, met or not, and what it reached: [{FINDINGS}]({FINDINGS})."]
    if machines:
        lines += ["", "Machines:", ""]
        lines += [f"- {label}: {describe_machine(json.loads(key))}" for key, label in machines.items()]
    commands = [s for s in summaries if s["status"] == "run"]
    if commands:
        lines += ["", "Commands (per env: the benchmark, and what it runs for each seed S):", ""]
        for s in commands:
            seeds = sorted(r["seed"] for r in s["runs"])
            train = " ".join(train_command(s["env"], "S", s["settings"], "NAME"))
            lines.append(
                f"- {s['env']} (seeds {', '.join(map(str, seeds))}): "
                f"`{suite_command(s['env'], len(seeds), s['settings'], recipes)}`, that is `{train}` then "
                f"`python -m scripts.evaluate --env {s['env']} --model NAME --episodes {EVAL_EPISODES} "
                "--seed 10000+S --json -`"
            )
        panels = [
            (
                s["env"].removeprefix("MiniGrid-"),
                [r["curve"] for r in s["runs"]],
                s["spec"].threshold,
                s["spec"].target_frames,
            )
            for s in commands
        ]
        os.makedirs(out_dir, exist_ok=True)
        plot_panels(panels, os.path.join(out_dir, "suite_curves.png"))
        lines += ["", "![learning curves of the suite](suite_curves.png)"]
    lines.append("")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "SUITE.md"), "w") as f:
        f.write("\n".join(lines))
    return "\n".join(lines)


def parse_args(argv=None):
    p = ArgumentParser(
        prog="python -m benchmarks.learning --suite",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--envs", nargs="+", default=None, metavar="ID", help="envs to train (default: the whole suite)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per env (default: 5)")
    p.add_argument("--first-seed", type=int, default=1, help="seeds run are FIRST_SEED, FIRST_SEED+1, ...")
    p.add_argument("--frames", type=int, default=None, help="a frame budget instead of the recipe's (smoke runs)")
    p.add_argument(
        "--allow-defaults",
        action="store_true",
        help="train an env named by --envs that has no recipe with the starter defaults (budget: --frames, or the "
        "issue's target frames)",
    )
    p.add_argument("--runs-dir", default=DEFAULT_RUNS_DIR, help="where runs (models and results) are kept")
    p.add_argument("--collect", action="store_true", help="train nothing: the report from the runs kept")
    p.add_argument(
        "--import-run",
        nargs=3,
        action="append",
        default=[],
        metavar=("ENV", "SEED", "MODEL_DIR"),
        help="add a run trained by hand with the suite's command (checked against the model's saved flags)",
    )
    p.add_argument("--out", default=os.path.join(REPO, "docs"), help="where SUITE.md and suite_curves.png go")
    args = p.parse_args(argv)
    if args.seeds < 1 or args.first_seed < 0 or (args.frames is not None and args.frames < 1):
        raise UsageError("--seeds and --frames must be at least 1, --first-seed at least 0")
    if args.allow_defaults and args.envs is None:
        raise UsageError("--allow-defaults trains the envs named by --envs only: add --envs ID ...")
    return args


@cli
def main(argv=None):
    args = parse_args(argv)
    recipes = load_recipes(recipes_path("ppo"))
    named = args.envs or []
    for env_id in named:
        check_env_id(env_id)
    report = [spec.env_id for spec in SUITE] + [e for e in dict.fromkeys(named) if e not in SUITE_BY_ID]
    settings = {env_id: settings_for(env_id, recipes, args.frames, args.allow_defaults) for env_id in report}
    for env_id, seed, model_dir in args.import_run:
        if env_id not in settings or settings[env_id] is None:
            raise UsageError(f"--import-run {env_id}: not an env of the report with a recipe (see --envs)")
        if not seed.isdigit():
            raise UsageError(f"--import-run {env_id} {seed}: the seed must be a number")
        import_run(env_id, int(seed), model_dir, settings[env_id], args.runs_dir)
        print(f"imported {model_dir} as {env_id} seed {seed}", flush=True)
    if not args.collect and not args.import_run:
        for env_id in named or report:
            if settings[env_id] is None:
                print(f"{env_id}: no recipe yet in recipes/ppo.toml, not trained", flush=True)
                continue
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                path = os.path.join(args.runs_dir, run_name(env_id, seed, settings[env_id]) + ".json")
                if os.path.exists(path):
                    continue
                try:
                    record = train_run(env_id, seed, settings[env_id], args.runs_dir)
                except RuntimeError as error:  # a command failed: what it said, without a traceback
                    print(f"error: {env_id} seed {seed}: {error}", file=sys.stderr)
                    sys.exit(1)
                print(
                    f"{env_id} seed {seed}: threshold at {fmt_frames(record['solved_at'])} frames, eval return "
                    f"{record['evaluation']['return_mean']:.2f}, success {record['evaluation']['success_rate']:.2f}, "
                    f"{record['wall']:.0f} s",
                    flush=True,
                )
    runs = load_runs(args.runs_dir)
    summaries = []
    for env_id in report:
        current = settings[env_id]
        mine = [r for r in runs if r["env"] == env_id and current is not None and r["key"] == settings_key(current)]
        other = sum(r["env"] == env_id for r in runs) - len(mine)
        if other:
            print(f"{env_id}: {other} kept run(s) with other settings than the current recipe left out", flush=True)
        summaries.append(summarize_env(suite_env(env_id), current, sorted(mine, key=lambda r: r["seed"])))
    print(write_report(summaries, recipes, args.out))


if __name__ == "__main__":
    main()
