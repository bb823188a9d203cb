"""Batched BabyAI: random-action steps/s of every BabyAI id, side by side with Minigrid and EnvPool.

    python -m benchmarks.babyai [--env ID ...] [--batch 1024] [--seconds 1] [--threads 2] [--device cpu|cuda]
                                [--compile] [--rounds 1]
    python -m benchmarks.babyai --bank [--env ID ...] [--seconds 5]

For each id (``--env`` takes MiniGrid ids too, e.g. to keep the engine's lead on them in view), one row: steps/s
(transitions summed over the batch) of

* ``torch_rl``: :class:`torch_rl.envs.BatchedMiniGridEnv` at ``--batch`` envs (one torch thread on CPU), its
  layouts drawn from a bank that was filled before timing (the bank's fill rate is ``--bank``'s subject);
  each torch_rl and EnvPool figure is measured in a fresh child process, ``--rounds`` times alternately, and the
  best of each is shown (EnvPool's figure for one id varies by up to 1.8x from one run to the next here);
* ``minigrid``: one ``gym.make(id)`` env, Python;
* ``envpool``: EnvPool's BabyAI at the same batch with ``--threads`` threads (``pip install
  envpool``; the column says "absent" without it, "hung" when it gave no figure within ``--envpool-timeout``).
  EnvPool's layouts come from its own C++ generator and random stream, so its episodes are not Minigrid's for the
  same seed: the comparison is of speed only.

``--bank``: layouts/s that Minigrid's own ``reset`` makes on one core for the slow levels, i.e. how fast a bank
grows (the rejection sampling of BossLevel, SynthSeq and GoToSeq is most of it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import queue
import time
from typing import Any

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI-* ids)
import numpy as np
import torch

from torch_rl.envs.minigrid import BatchedMiniGridEnv
from torch_rl.envs.minigrid.registry import BABYAI_IDS, SUPPORTED_ENV_IDS

SLOW_LEVELS = ("BabyAI-BossLevel-v0", "BabyAI-SynthSeq-v0", "BabyAI-GoToSeq-v0", "BabyAI-GoToLocal-v0")


def in_child(fn, args: tuple, timeout: float) -> Any:
    """``fn(*args)`` run in a fresh process: each measurement starts from the same state (a long run's earlier envs,
    their banks' cache writers or a peer's threads do not weigh on it); "hung" when it gave nothing within
    ``timeout`` seconds (EnvPool 1.2.5's SynthS5R2 never returns from ``reset`` at 64 envs or more)."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    # not a daemon: a bank's worker is a process of the child's own (a hung child is killed below)
    child = context.Process(target=_child, args=(results, fn, args))
    child.start()
    try:
        result = results.get(timeout=timeout)
        child.join(timeout=60)  # a clean exit: a killed child leaves its queue's semaphore to the resource tracker
        return result
    except queue.Empty:
        return "hung"
    finally:
        if child.is_alive():
            child.kill()
        child.join()


def _child(results, fn, args) -> None:
    try:
        results.put(fn(*args))
    except Exception as error:  # shown in the table's cell
        results.put(f"failed ({type(error).__name__}: {error})")


def torch_rl_steps(env_id: str, batch: int, seconds: float, device: str, compile: bool = False) -> float:
    # a bank of 1,024 layouts, all made before timing (SynthS5R2 makes ~15 a second: start_timeout allows for it)
    bank = {"capacity": 1024, "initial": 1024, "start_timeout": 900}
    env = BatchedMiniGridEnv(env_id, batch, device=device, seed=0, bank_options=bank, compile=compile)
    actions = torch.randint(7, (64, batch), device=device)
    env.reset(seed=0)
    for t in range(50):  # warm-up: the first steps build the mission tables and note the level's rules
        env.step(actions[t % 64])
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for t in range(16):
            env.step(actions[(steps + t) % 64])
        steps += 16
    if env.device.type == "cuda":
        torch.cuda.synchronize()
    rate = steps * batch / (time.perf_counter() - start)
    env.close()
    return rate


def minigrid_steps(env_id: str, seconds: float) -> float:
    env = gym.make(env_id).unwrapped
    rng = np.random.default_rng(0)
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet):
        env.reset(seed=0)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            _, _, terminated, truncated, _ = env.step(int(rng.integers(7)))
            steps += 1
            if terminated or truncated:
                env.reset()
    return steps / (time.perf_counter() - start)


def envpool_steps(env_id: str, batch: int, threads: int, seconds: float) -> float | None:
    """EnvPool's steps/s, or None when EnvPool is not installed."""
    try:
        import envpool
    except ImportError:
        return None
    env = envpool.make_gymnasium(env_id, num_envs=batch, num_threads=threads, seed=0)
    env.reset()
    rng = np.random.default_rng(0)
    actions = rng.integers(7, size=(64, batch))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.step(actions[steps % 64])
        steps += 1
    return steps * batch / (time.perf_counter() - start)


def bank_rate(env_id: str, seconds: float) -> float:
    env = gym.make(env_id).unwrapped
    made, start = 0, time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        while time.perf_counter() - start < seconds:
            env.reset(seed=made)
            made += 1
    return made / (time.perf_counter() - start)


def _best(best: float | str | None, rate: float | str | None) -> float | str | None:
    """The higher of two rounds' figures; a round without a figure (a string: hung, failed) only where no round
    had one."""
    if isinstance(best, float) and isinstance(rate, float):
        return max(best, rate)
    return best if isinstance(best, float) else rate


def _k(rate: float | str | None) -> str:
    if isinstance(rate, str):
        return rate
    return "absent" if rate is None else f"{rate / 1000:,.0f}k"  # None: EnvPool is not installed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env", nargs="+", default=None, help="ids (default: all 96 BabyAI ids; MiniGrid ids are measured alike)"
    )
    parser.add_argument("--batch", type=int, default=1024, help="envs per batch (default 1024)")
    parser.add_argument("--threads", type=int, default=2, help="EnvPool's threads (default 2)")
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per measurement (default 1)")
    parser.add_argument("--device", default="cpu", help="torch_rl's device (default cpu)")
    parser.add_argument(
        "--envpool-timeout", type=float, default=120.0, help="seconds before EnvPool counts as hung (default 120)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="torch_rl's env with compile=True (compiled before timing)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate torch_rl and EnvPool this many times, best of each (default 1)"
    )
    parser.add_argument("--no-minigrid", action="store_true", help="skip Minigrid's own envs (slow to time)")
    parser.add_argument("--bank", action="store_true", help="measure layouts/s of Minigrid's reset instead")
    args = parser.parse_args(argv)
    ids = args.env or (list(SLOW_LEVELS) if args.bank else list(BABYAI_IDS))
    unknown = [i for i in ids if i not in SUPPORTED_ENV_IDS]
    if unknown:
        parser.error(f"unknown ids {unknown}")
    if min(args.batch, args.threads, args.rounds) < 1 or args.seconds <= 0 or args.envpool_timeout <= 0:
        parser.error("--batch, --threads, --rounds, --seconds and --envpool-timeout must be > 0")
    if args.bank:
        print("| id | layouts/s, one core |\n|---|---|")
        for env_id in ids:
            print(f"| {env_id} | {bank_rate(env_id, args.seconds):,.0f} |", flush=True)
        return
    compiled = ", compile=True" if args.compile else ""
    print(
        f"random actions, B = {args.batch}, torch_rl on {args.device} (1 thread{compiled}), EnvPool with {args.threads}"
    )
    print("| id | torch_rl | minigrid (1 env) | envpool | torch_rl / envpool |\n|---|---|---|---|---|")
    ratios = []
    for env_id in ids:
        ours = theirs = None
        for _ in range(args.rounds):
            ours = _best(
                ours, in_child(torch_rl_steps, (env_id, args.batch, args.seconds, args.device, args.compile), 1200)
            )
            if theirs is None or isinstance(theirs, float):  # not absent, hung nor failed
                theirs = _best(
                    theirs,
                    in_child(envpool_steps, (env_id, args.batch, args.threads, args.seconds), args.envpool_timeout),
                )
        plain = None if args.no_minigrid else minigrid_steps(env_id, args.seconds)
        ratio = ""
        if isinstance(ours, float) and isinstance(theirs, float):
            ratio = f"{ours / theirs:.1f}x"
            ratios.append(ours / theirs)
        plain_text = "-" if plain is None else f"{plain / 1000:,.1f}k"
        print(f"| {env_id} | {_k(ours)} | {plain_text} | {_k(theirs)} | {ratio} |", flush=True)
    if ratios:
        median = float(np.median(ratios))
        print(f"torch_rl / envpool: min {min(ratios):.1f}x, median {median:.1f}x over {len(ratios)} ids")


if __name__ == "__main__":
    main()
