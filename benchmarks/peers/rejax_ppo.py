"""rejax PPO on NAVIX DoorKey-8x8: the JAX peer of the PPO training-speed sweep (issue 28).

    python -m benchmarks.peers.rejax_ppo --envs 16 --steps 128 --epochs 4 --minibatches 8 --frames N \
        [--solve 0.9] [--seed 0] [--lr LR] [--gamma G] [--eval-every FRAMES] [--json]

Needs jax, navix and rejax (``pip install -e ".[peers]"``, best in a separate virtual environment); without them
it prints one line, ``skipped: rejax + NAVIX not installed (pip install -e ".[peers]")``, and exits 0.

**What runs.** rejax's PPO (``rejax.PPO``, its own rollout, GAE, clipped losses and Adam) on NAVIX's
``Navix-DoorKey-8x8-v0``, the whole update jitted. The network is rejax's default shape, written out: separate
actor and critic MLPs, 64x64 tanh, on the flattened 7x7x3 symbolic first-person view
(``navix.observations.symbolic_first_person``; NAVIX's default for this id is the full 8x8x3 grid). PPO: clip 0.2,
GAE lambda 0.95, value coefficient 0.5, entropy 0.01, gradient norm clipped at 0.5, ``--epochs`` epochs of
``--minibatches`` minibatches over each ``--envs`` x ``--steps`` rollout.

**The task is Minigrid's.** NAVIX's ``make`` gives DoorKey-8x8 100 steps and a reward of 1 at the goal; Minigrid's
DoorKey-8x8 has 640 steps (10 x 8 x 8) and a reward of 1 - 0.9 x steps / 640. Both are NAVIX options
(``max_steps``, ``penality_coeff``) and are set to Minigrid's here, so the returns mean what torch_rl's mean and
``--solve 0.9`` is the issue's "0.9 on real Minigrid": a mean return of 0.9 needs every episode to reach the goal,
in 64 steps on average. Left unlike Minigrid: NAVIX's first-person view does not hide what lies behind walls, and
it shows floor, not the carried key, in the agent's own cell.

**What it measures.** ``compile_s``: tracing and compiling the training chunk (and, with ``--solve``, the
evaluation), ahead of time (``jax.jit(...).lower(...).compile()``), so no compile hides in the timed calls.
``fps``: frames / seconds of the compiled training alone (``block_until_ready`` after each chunk; evaluations not
counted). Training runs in chunks of ``--eval-every`` frames (rounded to whole rollouts), so the frames run are
``--frames`` rounded up to whole chunks (``frames`` in the output). With ``--solve X`` an evaluation follows each
chunk: rejax's ``evaluate``, 128 episodes of the sampling policy, each up to 640 steps, its mean return; the run
stops at the first evaluation whose mean return is at least X and reports ``solved_frames`` (frames trained by
then) and ``solved_wall_s``: seconds from the process's start (read from /proc; Python's and JAX's start-up,
building the env and the networks, compiling and the evaluations all included). ``solved_frames`` is exact to one
chunk; a smaller ``--eval-every`` resolves it finer and costs more evaluations.

**Solving setting.** Fastest to solve DoorKey-8x8 (``--solve 0.9``) in wall-clock on a 2-core CPU (2026-12; rejax
0.1.3, navix 0.7.4, jax 0.10.2; 4 epochs x 8 minibatches, evaluation every 65,536 frames):
``--envs 64 --steps 128 --lr 1e-3 --gamma 0.99``: seeds 0, 1, 2 solved at 655k, 655k and 721k frames, 36, 47 and
40 s from process start, of which start-up and compile were 19-30 s (the CPU shared with other work). 16 x 128
solved at 393k and 459k frames on seeds 0 and 2 but needed 2.5M on seed 1 (119 s); 256 x 64 solved at 983k and
918k on seeds 0 and 1 and never within 3M on seed 2; 1024 x 32 needed 1.7M; gamma 0.95 and lr 2.5e-4 were slower.
The defaults of ``--lr`` and ``--gamma`` are this setting's; ``--envs`` and ``--steps`` default to 16 x 128, the
sweep's first setting.

**Contract with the sweep harness** (``benchmarks/training_sweep.py --peer-python PYTHON``): it runs
``PYTHON -m benchmarks.peers.rejax_ppo --envs E --steps S --epochs K --minibatches M --frames N [--solve X]
[--seed 0] --json`` from the repository root, with an interpreter that has jax, navix and rejax. The last line of
stdout is either the skip line above or one JSON object with the keys of ``run``'s result: peer, versions, env,
envs, steps, epochs, minibatches, lr, gamma, seed, frames, startup_s (process start to the first compile),
compile_s, train_s, fps, eval_s, solve, solved_frames, solved_wall_s, last_return, wall_s (``solved_*`` and
``last_return`` are null where they do not apply). Exit status 0 in both cases; anything else is a failure.
In-process, ``run(envs, steps, epochs, minibatches, frames, seed)`` returns the same dict.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time

SKIP_LINE = 'skipped: rejax + NAVIX not installed (pip install -e ".[peers]")'
ENV_ID = "Navix-DoorKey-8x8-v0"
MAX_STEPS = 640  # Minigrid's DoorKey-8x8, 10 * size * size (NAVIX's make() default: 100)
PENALTY = 0.9  # Minigrid's reward on success, 1 - 0.9 * steps / max_steps (NAVIX's default coefficient: 0)
EVAL_EPISODES = 128  # rejax's own evaluation size
SOLVING = {"envs": 64, "steps": 128, "lr": 1e-3, "gamma": 0.99}  # see "Solving setting" in the docstring
DEFAULT_EVAL_EVERY = 65_536


def peers_available() -> bool:
    return all(importlib.util.find_spec(name) is not None for name in ("jax", "navix", "rejax"))


def seconds_since_process_start() -> float:
    """Seconds since this process started, from /proc (Linux); since this module's import elsewhere."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time, clock ticks after boot
        return time.clock_gettime(time.CLOCK_BOOTTIME) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


def make_algo(envs, steps, epochs, minibatches, lr, gamma):
    import navix
    from rejax import PPO

    return PPO.create(
        env=f"navix/{ENV_ID}",
        env_params={
            "max_steps": MAX_STEPS,
            "penality_coeff": PENALTY,
            "observation_fn": navix.observations.symbolic_first_person,
        },
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": (64, 64)},
        num_envs=envs,
        num_steps=steps,
        num_epochs=epochs,
        num_minibatches=minibatches,
        learning_rate=lr,
        gamma=gamma,
        gae_lambda=0.95,
        clip_eps=0.2,
        vf_coef=0.5,
        ent_coef=0.01,
        max_grad_norm=0.5,
    )


def run(
    envs,
    steps,
    epochs,
    minibatches,
    frames,
    seed=0,
    *,
    solve=None,
    lr=SOLVING["lr"],
    gamma=SOLVING["gamma"],
    eval_every=DEFAULT_EVAL_EVERY,
) -> dict:
    """Trains rejax PPO on NAVIX DoorKey-8x8 for ``frames`` (rounded up to whole chunks of ``eval_every``), or
    until the mean evaluation return reaches ``solve``; returns the figures the module docstring describes."""
    import importlib.metadata as metadata

    import jax
    from rejax.evaluate import evaluate

    if (envs * steps) % minibatches:
        raise ValueError(f"envs x steps ({envs * steps}) must divide into {minibatches} minibatches")
    algo = make_algo(envs, steps, epochs, minibatches, lr, gamma)
    rollout = envs * steps
    chunk_updates = max(1, round(eval_every / rollout))
    chunk_frames = chunk_updates * rollout
    chunks = max(1, math.ceil(frames / chunk_frames))

    def train_chunk(ts):
        return jax.lax.fori_loop(0, chunk_updates, lambda _, ts: algo.train_iteration(ts), ts)

    def mean_eval_return(ts, rng):
        _, returns = evaluate(algo.make_act(ts), rng, algo.env, algo.env_params, EVAL_EPISODES, MAX_STEPS)
        return returns.mean()

    ts = jax.block_until_ready(jax.jit(algo.init_state)(jax.random.PRNGKey(seed)))
    startup_s = seconds_since_process_start()
    start = time.perf_counter()
    train = jax.jit(train_chunk, donate_argnums=0).lower(ts).compile()
    evaluation = None
    if solve is not None:
        evaluation = jax.jit(mean_eval_return).lower(ts, jax.random.PRNGKey(0)).compile()
    compile_s = time.perf_counter() - start

    train_s = eval_s = 0.0
    done = 0
    solved_frames = solved_wall_s = last_return = None
    eval_rng = jax.random.PRNGKey(seed + 1_000_003)
    for _ in range(chunks):
        start = time.perf_counter()
        ts = jax.block_until_ready(train(ts))
        train_s += time.perf_counter() - start
        done += chunk_frames
        if evaluation is not None:
            start = time.perf_counter()
            eval_rng, key = jax.random.split(eval_rng)
            last_return = float(evaluation(ts, key))
            eval_s += time.perf_counter() - start
            if last_return >= solve:
                solved_frames, solved_wall_s = done, round(seconds_since_process_start(), 2)
                break
    return {
        "peer": "rejax+navix",
        "versions": {name: metadata.version(name) for name in ("jax", "navix", "rejax")},
        "env": ENV_ID,
        "envs": envs,
        "steps": steps,
        "epochs": epochs,
        "minibatches": minibatches,
        "lr": lr,
        "gamma": gamma,
        "seed": seed,
        "frames": done,
        "startup_s": round(startup_s, 2),
        "compile_s": round(compile_s, 2),
        "train_s": round(train_s, 2),
        "fps": round(done / train_s),
        "eval_s": round(eval_s, 2),
        "solve": solve,
        "solved_frames": solved_frames,
        "solved_wall_s": solved_wall_s,
        "last_return": None if last_return is None else round(last_return, 3),
        "wall_s": round(seconds_since_process_start(), 2),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", type=int, default=16, help="parallel environments")
    parser.add_argument("--steps", type=int, default=128, help="steps per environment per rollout")
    parser.add_argument("--epochs", type=int, default=4, help="PPO epochs per rollout")
    parser.add_argument("--minibatches", type=int, default=8, help="minibatches per epoch")
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames to train (rounded up to chunks)")
    parser.add_argument("--solve", type=float, default=None, metavar="X", help="stop once the eval return >= X")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--lr", type=float, default=SOLVING["lr"], help="Adam learning rate")
    parser.add_argument("--gamma", type=float, default=SOLVING["gamma"], help="discount")
    parser.add_argument(
        "--eval-every", type=int, default=DEFAULT_EVAL_EVERY, help="frames per chunk (an evaluation after each)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not peers_available():
        print(SKIP_LINE)
        return 0
    result = run(
        args.envs,
        args.steps,
        args.epochs,
        args.minibatches,
        args.frames,
        args.seed,
        solve=args.solve,
        lr=args.lr,
        gamma=args.gamma,
        eval_every=args.eval_every,
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>14}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
