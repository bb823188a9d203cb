"""Random-action stepping speed: BatchedMiniGridEnv vs Minigrid's own envs.

    python -m benchmarks.batched_env [--quick] [--device cpu|cuda] [--env ID ...]
                                     [--threads N] [--seconds S]

For every env id, measures steps/s (environment transitions per second, summed
over the batch) of

* ``minigrid``: one ``gym.make(env_id)`` env stepped with random actions,
* ``sync16``: ``gymnasium.vector.SyncVectorEnv`` of 16 Minigrid envs,
* ``batched B``: :class:`torch_rl.envs.BatchedMiniGridEnv` at B = 16 ... 4096,

prints a table and a final line of ratios ``batched/minigrid 35.2x at B=4096 | ...``.

:func:`measure_env_steps` is the reusable measurement; :func:`main` runs the
sections (a PPO training FPS section can be added next to
:func:`env_stepping_section`).
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import numpy as np
import torch

from torch_rl.envs.batched_minigrid import BatchedMiniGridEnv

DEFAULT_ENVS = ("MiniGrid-DoorKey-8x8-v0", "MiniGrid-Empty-8x8-v0")
BATCH_SIZES = (16, 64, 256, 1024, 4096)
QUICK_BATCH_SIZES = (16, 256, 4096)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_env_steps(env_id: str, num_envs: int, device: str = "cpu",
                      duration: float = 1.0, warmup_steps: int = 10, seed: int = 0,
                      num_threads: int | None = 1) -> float:
    """Random-action steps/s (summed over the batch) of ``BatchedMiniGridEnv``.

    Actions are drawn uniformly from the 7 actions, on ``device``, ahead of
    time (a buffer of 64 steps cycled), so only ``env.step`` is timed;
    autoresets are included.  Runs for about ``duration`` seconds.
    ``num_threads`` is passed to the env (torch threads used while stepping).
    """
    dev = torch.device(device)
    env = BatchedMiniGridEnv(env_id, num_envs, device=dev, seed=seed, num_threads=num_threads)
    env.reset(seed=seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    actions = torch.randint(0, 7, (64, num_envs), device=dev, generator=gen)
    for t in range(warmup_steps):
        env.step(actions[t % 64])
    _sync(dev)
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(8):
            env.step(actions[n % 64])
            n += 1
        _sync(dev)
        elapsed = time.perf_counter() - start
        if elapsed >= duration:
            break
    env.close()
    return n * num_envs / elapsed


def measure_minigrid_steps(env_id: str, duration: float = 1.0, seed: int = 0) -> float:
    """Random-action steps/s of one ``gym.make(env_id)`` Minigrid env (with resets)."""
    env = gym.make(env_id)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 7, size=4096)
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(64):
            _, _, term, trunc, _ = env.step(int(actions[n % 4096]))
            n += 1
            if term or trunc:
                env.reset()
        elapsed = time.perf_counter() - start
        if elapsed >= duration:
            break
    env.close()
    return n / elapsed


def measure_minigrid_sync_steps(env_id: str, num_envs: int = 16, duration: float = 1.0,
                                seed: int = 0) -> float:
    """Random-action steps/s of a gymnasium ``SyncVectorEnv`` of Minigrid envs."""
    envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id) for _ in range(num_envs)])
    envs.reset(seed=seed)
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 7, size=(64, num_envs))
    n = 0
    start = time.perf_counter()
    while True:
        for _ in range(8):
            envs.step(actions[n % 64])
            n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= duration:
            break
    envs.close()
    return n * num_envs / elapsed


def env_stepping_section(env_ids, batch_sizes, device: str, duration: float,
                         env_threads: int | None = 1) -> list[str]:
    """Print the env-stepping table; return one ratio summary line per env id."""
    summaries = []
    threads = env_threads if env_threads is not None else torch.get_num_threads()
    print(f"\n== Random-action env stepping (device={device}, batched env torch threads="
          f"{threads}) ==")
    header = f"{'env':28s} {'stepper':>14s} {'steps/s':>14s} {'x minigrid':>11s}"
    print(header)
    print("-" * len(header))
    for env_id in env_ids:
        short = env_id.replace("MiniGrid-", "")
        base = measure_minigrid_steps(env_id, duration)
        print(f"{short:28s} {'minigrid x1':>14s} {base:14,.0f} {1.0:10.1f}x", flush=True)
        sync = measure_minigrid_sync_steps(env_id, 16, duration)
        print(f"{short:28s} {'sync16':>14s} {sync:14,.0f} {sync / base:10.1f}x", flush=True)
        ratios = []
        for b in batch_sizes:
            sps = measure_env_steps(env_id, b, device, duration, num_threads=env_threads)
            ratios.append(f"{sps / base:.1f}x at B={b}")
            print(f"{short:28s} {f'batched {b}':>14s} {sps:14,.0f} {sps / base:10.1f}x",
                  flush=True)
        summaries.append(f"{short}: batched/minigrid " + " | ".join(ratios))
    return summaries


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batch sizes, shorter runs")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--env", nargs="+", default=None, help="env ids (default: DoorKey-8x8, Empty-8x8)")
    parser.add_argument("--seconds", type=float, default=None, help="time per measurement")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: leave torch's default)")
    parser.add_argument("--env-threads", type=int, default=1,
                        help="torch threads inside BatchedMiniGridEnv.step (default 1; "
                             "0 = use the global torch setting)")
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    env_ids = args.env or (DEFAULT_ENVS[:1] if args.quick else DEFAULT_ENVS)
    batch_sizes = QUICK_BATCH_SIZES if args.quick else BATCH_SIZES
    duration = args.seconds or (0.5 if args.quick else 2.0)

    env_threads = args.env_threads or None
    summaries = env_stepping_section(env_ids, batch_sizes, args.device, duration, env_threads)
    # (further sections, e.g. PPO training FPS, go here)

    print()
    for line in summaries:
        print(line)


if __name__ == "__main__":
    main()
