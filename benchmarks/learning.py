"""Learning quality: does every advertised capability learn, at what budget? Trains with the starter scripts.

    python -m benchmarks.learning [--quick] [--seeds N] [--tasks NAME ...]
    python -m benchmarks.learning --suite ...   (the issue-17 MiniGrid suite with its recipes: benchmarks/suite.py)

For each task it trains `python -m scripts.train` (defaults, plus the task's flags) once per seed in a temporary
storage folder, reads log.csv, and reports the frames at which the rolling mean (over 5 logged updates) of the
mean return first reaches the threshold (median and worst over seeds; "-" if never), the final evaluation
(`python -m scripts.evaluate`, 100 episodes) and the wall time. It writes docs/RESULTS.md and
docs/results_curves.png (mean +- spread of the return over seeds, one panel per task).
"""

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# name: (capability, env, extra train flags, threshold, frame budget, target in words)
TASKS = {
    "ppo-doorkey": (
        "PPO",
        "MiniGrid-DoorKey-5x5-v0",
        ["--algo", "ppo"],
        0.9,
        200_000,
        "return >= 0.9 by 80k frames (median), 5/5 seeds by 200k",
    ),
    "a2c-doorkey": (
        "A2C",
        "MiniGrid-DoorKey-5x5-v0",
        ["--algo", "a2c"],
        0.9,
        1_000_000,
        "5/5 seeds reach 0.9 within 1M frames",
    ),
    # Memory models default to one-hot images (scripts.train --image-encoding auto); the controls without
    # memory get the same input, so that memory is the only difference.
    "memory": (
        "memory (--recurrence 16)",
        "MiniGrid-MemoryS7-v0",
        ["--algo", "ppo", "--recurrence", "16"],
        0.9,
        2_000_000,
        "success >= 0.9",
    ),
    "memory-off": (
        "same, without memory",
        "MiniGrid-MemoryS7-v0",
        ["--algo", "ppo", "--image-encoding", "onehot"],
        0.9,
        2_000_000,
        "stays near chance (0.5)",
    ),
    # From MemoryS7's (and S9's) junction, facing back, the cue and both objects are in view at once: a policy
    # can decide there without memory. In S11 the cue is out of sight from the junction.
    "memory-s11": (
        "memory (--recurrence 32)",
        "MiniGrid-MemoryS11-v0",
        ["--algo", "ppo", "--recurrence", "32"],
        0.9,
        6_000_000,
        "success >= 0.9",
    ),
    "memory-s11-off": (
        "same, without memory",
        "MiniGrid-MemoryS11-v0",
        ["--algo", "ppo", "--image-encoding", "onehot"],
        0.9,
        4_000_000,
        "stays near chance (0.5)",
    ),
    "memory-cue": (
        "memory (--recurrence 8)",
        "torch_rl/CueCorridor-v0",
        ["--algo", "ppo", "--recurrence", "8"],
        0.9,
        400_000,
        "success >= 0.9 (a cue seen only at the first step decides the choice 6 steps later)",
    ),
    "memory-cue-off": (
        "same, without memory",
        "torch_rl/CueCorridor-v0",
        ["--algo", "ppo", "--image-encoding", "onehot"],
        0.9,
        400_000,
        "stays at chance (0.5)",
    ),
    "text": (
        "text (--text)",
        "MiniGrid-GoToDoor-5x5-v0",
        ["--algo", "ppo", "--text"],
        0.8,
        1_000_000,
        "success >= 0.8",
    ),
    "text-off": (
        "same, without text",
        "MiniGrid-GoToDoor-5x5-v0",
        ["--algo", "ppo"],
        0.8,
        1_000_000,
        "cannot pass ~0.25",
    ),
    "pendulum": ("continuous actions", "Pendulum-v1", ["--algo", "ppo"], -300, 1_000_000, "mean return >= -300"),
    "doorkey-8x8": ("harder", "MiniGrid-DoorKey-8x8-v0", ["--algo", "ppo"], 0.9, 2_000_000, "frames to >= 0.9"),
    "keycorridor": ("harder", "MiniGrid-KeyCorridorS3R1-v0", ["--algo", "ppo"], 0.9, 1_000_000, "frames to >= 0.9"),
}
SUITE_LINK = (
    "The MiniGrid suite of issue 17, each env with its recipe (`python -m benchmarks.learning --suite`): "
    "[SUITE.md](SUITE.md)."
)
QUICK_BUDGET = {
    "ppo-doorkey": 120_000,
    "a2c-doorkey": 300_000,
    "memory": 300_000,
    "memory-off": 300_000,
    "memory-s11": 300_000,
    "memory-s11-off": 300_000,
    "memory-cue": 200_000,
    "memory-cue-off": 200_000,
    "text": 300_000,
    "text-off": 300_000,
    "pendulum": 300_000,
    "doorkey-8x8": 300_000,
    "keycorridor": 300_000,
}


def run(command, env):
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-1500:]}")
    return result.stdout


def train_and_evaluate(name, seed, budget, storage):
    _, env_id, flags, threshold, _, _ = TASKS[name]
    model = f"{name}-seed{seed}"
    env = dict(os.environ, TORCH_RL_STORAGE=storage, OMP_NUM_THREADS="1")
    start = time.time()
    stop = [] if name.endswith("-off") else ["--stop-at-return", str(threshold)]  # controls run the whole budget
    run(
        [
            sys.executable,
            "-m",
            "scripts.train",
            "--env",
            env_id,
            "--model",
            model,
            "--seed",
            str(seed),
            "--frames",
            str(budget),
            "--save-interval",
            "0",
            "--quiet",
            "--no-recipe",  # the starter defaults, plus the task's flags: what this table measures
            *stop,
            *flags,
        ],
        env,
    )
    wall = time.time() - start
    curve = read_curve(os.path.join(storage, model, "log.csv"))
    solved_at = first_crossing(curve, threshold)
    evaluation = evaluate_model(env_id, model, seed, env)
    return {"seed": seed, "solved_at": solved_at, "curve": curve, "wall": wall, "evaluation": evaluation}


def read_curve(log_path):
    """(frames, mean return) of each logged update of a log.csv that saw an episode end."""
    with open(log_path) as f:
        return curve_of(csv.DictReader(f))


def curve_of(rows):
    """(frames, mean return) of the log.csv rows (dicts) that saw an episode end."""
    return [(int(r["frames"]), float(r["return_mean"])) for r in rows if r["return_mean"] not in ("", "nan")]


def evaluate_model(env_id, model, seed, env, episodes=100):
    """``python -m scripts.evaluate`` of ``model`` on Minigrid's own envs (also for a model trained --batched: both
    backends give the same observations), seeded apart from training; its --json results."""
    command = [sys.executable, "-m", "scripts.evaluate", "--env", env_id, "--model", model]
    command += ["--episodes", str(episodes), "--seed", str(10_000 + seed), "--json", "-"]
    return json.loads(run(command, env))


def cached_run(runs_dir, name, seed, budget, run_it):
    """A run's result, from ``runs_dir`` when an earlier invocation already made it (same task, seed, budget)."""
    if runs_dir is None:
        return run_it()
    path = os.path.join(runs_dir, f"{name}-seed{seed}-{budget}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    result = run_it()
    os.makedirs(runs_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(result, f)
    return result


def first_crossing(curve, threshold, window=5):
    """Frames at which the rolling mean (over ``window`` logged updates) of the mean return first reaches
    ``threshold`` (the same rule as scripts.train --stop-at-return)."""
    for i in range(window - 1, len(curve)):
        if sum(ret for _, ret in curve[i - window + 1 : i + 1]) / window >= threshold:
            return curve[i][0]
    return None


def summarize(name, runs):
    capability, env_id, _, threshold, budget, target = TASKS[name]
    solved = [r["solved_at"] for r in runs if r["solved_at"] is not None]
    median = statistics.median(solved) if len(solved) == len(runs) else None
    worst = max(solved) if len(solved) == len(runs) else None
    evaluation_returns = [r["evaluation"]["return_mean"] for r in runs]
    success = [r["evaluation"].get("success_rate") for r in runs]
    return {
        "task": name,
        "capability": capability,
        "env": env_id,
        "target": target,
        "threshold": threshold,
        "budget": budget,
        "seeds": len(runs),
        "solved": len(solved),
        "median_frames": median,
        "worst_frames": worst,
        "eval_return": statistics.mean(evaluation_returns),
        "eval_success": statistics.mean(s for s in success if s is not None)
        if any(s is not None for s in success)
        else None,
        "wall_s": statistics.mean(r["wall"] for r in runs),
    }


def fmt_frames(value):
    return "-" if value is None else f"{value / 1000:.0f}k"


def write_results(summaries, all_runs, seeds, quick, out_dir, name="RESULTS"):
    os.makedirs(out_dir, exist_ok=True)
    lines = [
        "# Learning results",
        "",
        f"Measured by `python -m benchmarks.learning{' --quick' if quick else ''} --seeds {seeds}` on "
        f"{os.cpu_count()} CPU cores (starter-script defaults, no per-seed tuning). "
        "Frames = first update where the rolling mean (5 updates) of the mean episode return reaches the threshold.",
        "",
        "| capability | task | target | seeds solved | median frames | worst frames | eval return | eval success "
        "| wall/seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        success = "-" if s["eval_success"] is None else f"{s['eval_success']:.2f}"
        lines.append(
            f"| {s['capability']} | {s['env']} | {s['target']} | {s['solved']}/{s['seeds']} within "
            f"{fmt_frames(s['budget'])} | {fmt_frames(s['median_frames'])} | {fmt_frames(s['worst_frames'])} | "
            f"{s['eval_return']:.2f} | {success} | {s['wall_s']:.0f} s |"
        )
    lines += ["", f"![learning curves]({name.lower()}_curves.png)", ""]
    if name == "RESULTS":
        lines += [SUITE_LINK, ""]
    with open(os.path.join(out_dir, f"{name}.md"), "w") as f:
        f.write("\n".join(lines))
    plot_curves(all_runs, os.path.join(out_dir, f"{name.lower()}_curves.png"))
    return "\n".join(lines)


def plot_curves(all_runs, path):
    panels = [
        (f"{name}\n{TASKS[name][1]}", [r["curve"] for r in runs], TASKS[name][3], None)
        for name, runs in all_runs.items()
    ]
    plot_panels(panels, path)


def plot_panels(panels, path):
    """One panel per (title, curves, threshold, target frames or None): the mean return over the curves (each a
    list of (frames, return)) and their min-max band, the threshold dashed, the target frames dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    cols = min(4, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3 * rows), squeeze=False)
    for ax, (title, curves, threshold, target_frames) in zip(axes.flat, panels, strict=False):
        curves = [c for c in curves if c]
        if curves:
            grid = np.linspace(0, max(c[-1][0] for c in curves), 100)
            values = np.array([np.interp(grid, [f for f, _ in c], [v for _, v in c]) for c in curves])
            mean = values.mean(0)
            ax.plot(grid, mean, label="mean over seeds")
            ax.fill_between(grid, values.min(0), values.max(0), alpha=0.3, label="min-max")
        ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
        if target_frames is not None:
            ax.axvline(target_frames, color="grey", linestyle=":", linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x / 1000:.0f}k"))
        ax.set_xlabel("frames")
        ax.set_ylabel("return")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    title = "mean return over seeds (band: min-max; a seed stopped once solved holds its last value; dashed: " + (
        "threshold, dotted: target frames)" if any(p[3] is not None for p in panels) else "threshold)"
    )
    fig.suptitle(textwrap.fill(title, 50 * cols), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--suite" in argv:  # the issue-17 suite: benchmarks/suite.py
        from benchmarks.suite import main as suite_main

        return suite_main([a for a in argv if a != "--suite"])
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.learning", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--suite",
        action="store_true",
        help="the issue-17 MiniGrid suite, each env with its recipe (python -m benchmarks.learning --suite --help)",
    )
    p.add_argument("--quick", action="store_true", help="smaller frame budgets (a smoke run, not the targets)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per task")
    p.add_argument(
        "--first-seed",
        type=int,
        default=1,
        help="seeds run are FIRST_SEED, FIRST_SEED+1, ... (to run seeds in parallel invocations that share "
        "--runs-dir, then report them together)",
    )
    p.add_argument(
        "--max-seeds",
        nargs="*",
        default=[],
        metavar="TASK=N",
        help="fewer seeds for expensive tasks, e.g. memory=2 text=2",
    )
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS), help="tasks to run")
    p.add_argument(
        "--runs-dir",
        default=None,
        help="keep each run's result here and reuse it in later invocations (to split or resume a long benchmark)",
    )
    p.add_argument("--out", default=os.path.join(REPO, "docs"), help="where RESULTS.md and the PNG go")
    p.add_argument(
        "--results-name", default="RESULTS", help="base name of the .md/.png written (to run task groups apart)"
    )
    args = p.parse_args(argv)
    all_runs, summaries = {}, []
    with tempfile.TemporaryDirectory() as storage:
        for name in args.tasks:
            budget = QUICK_BUDGET[name] if args.quick else TASKS[name][4]
            all_runs[name] = []
            caps = {task: int(n) for task, n in (item.split("=") for item in args.max_seeds)}
            for seed in range(args.first_seed, args.first_seed + min(args.seeds, caps.get(name, args.seeds))):
                result = cached_run(
                    args.runs_dir,
                    name,
                    seed,
                    budget,
                    lambda name=name, seed=seed, budget=budget: train_and_evaluate(name, seed, budget, storage),
                )
                all_runs[name].append(result)
                print(
                    f"{name} seed {seed}: reached threshold at {fmt_frames(result['solved_at'])} frames, "
                    f"eval return {result['evaluation']['return_mean']:.2f}, {result['wall']:.0f} s",
                    flush=True,
                )
            summary = summarize(name, all_runs[name])
            summary["budget"] = budget
            summaries.append(summary)
    print(write_results(summaries, all_runs, args.seeds, args.quick, args.out, args.results_name))


if __name__ == "__main__":
    main()
