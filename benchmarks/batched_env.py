"""Random-action stepping speed: BatchedMiniGridEnv vs Minigrid's own envs.

    python -m benchmarks.batched_env [--quick] [--device cpu|cuda] [--env ID ...]
                                     [--threads N] [--seconds S]
    python -m benchmarks.batched_env --table [--batch B] [--device cpu|cuda] [--env ID ...]

For every env id, measures steps/s (environment transitions per second, summed
over the batch) of

* ``minigrid``: one ``gym.make(env_id)`` env stepped with random actions,
* ``sync16``: ``gymnasium.vector.SyncVectorEnv`` of 16 Minigrid envs,
* ``batched B``: :class:`torch_rl.envs.BatchedMiniGridEnv` at B = 16 ... 4096,

(``--table``: one row per supported id instead: Minigrid's own steps/s, the batched env's at one batch size
and its start-up time, i.e. until the layout bank holds its first layouts), then PPO training FPS on the
batched DoorKey-5x5 (``--ppo-env`` for others) (starter model, everything on
the device), and (unless --quick/--no-transfer) trains with ``scripts.train
--batched`` until the mean return reaches 0.9 and evaluates that policy on
Minigrid's own env. The last lines print the ratios and results.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import numpy as np
import torch

from torch_rl.envs.minigrid import BatchedMiniGridEnv
from torch_rl.envs.minigrid.registry import MINIGRID_IDS

DEFAULT_ENVS = ("MiniGrid-DoorKey-8x8-v0", "MiniGrid-Empty-8x8-v0")
BATCH_SIZES = (16, 64, 256, 1024, 4096)
QUICK_BATCH_SIZES = (16, 256, 4096)
CUDA_BATCH_SIZES = (256, 4096, 16384, 65536, 262144)  # a GPU needs tens of thousands of envs to fill it


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_env_steps(
    env_id: str,
    num_envs: int,
    device: str = "cpu",
    duration: float = 1.0,
    warmup_steps: int = 10,
    seed: int = 0,
    num_threads: int | None = 1,
) -> float:
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


def measure_minigrid_sync_steps(env_id: str, num_envs: int = 16, duration: float = 1.0, seed: int = 0) -> float:
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


def env_stepping_section(env_ids, batch_sizes, device: str, duration: float, env_threads: int | None = 1) -> list[str]:
    """Print the env-stepping table; return one ratio summary line per env id."""
    summaries = []
    threads = env_threads if env_threads is not None else torch.get_num_threads()
    print(f"\n== Random-action env stepping (device={device}, batched env torch threads={threads}) ==")
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
            print(f"{short:28s} {f'batched {b}':>14s} {sps:14,.0f} {sps / base:10.1f}x", flush=True)
        summaries.append(f"{short}: batched/minigrid " + " | ".join(ratios))
    return summaries


def id_table_section(env_ids, num_envs: int, device: str, duration: float) -> list[str]:
    """One row per id: Minigrid's steps/s, batched steps/s at ``num_envs``, ratio, start-up seconds."""
    print(f"\n== Random-action steps/s per id (device={device}, batched B={num_envs}) ==")
    header = f"{'env':34s} {'minigrid':>10s} {'batched':>12s} {'ratio':>8s} {'start-up':>9s}"
    print(header)
    print("-" * len(header))
    ratios = []
    for env_id in env_ids:
        short = env_id.replace("MiniGrid-", "")
        base = measure_minigrid_steps(env_id, duration)
        start = time.perf_counter()
        BatchedMiniGridEnv(env_id, 1, device=device, seed=0).close()
        startup = time.perf_counter() - start
        sps = measure_env_steps(env_id, num_envs, device, duration)
        ratios.append(sps / base)
        print(f"{short:34s} {base:10,.0f} {sps:12,.0f} {sps / base:7.0f}x {startup:8.1f}s", flush=True)
    return [f"per-id table: batched/minigrid from {min(ratios):.0f}x to {max(ratios):.0f}x at B={num_envs}"]


def measure_ppo_fps(
    env_id: str,
    num_envs: int,
    device: str,
    updates: int,
    batch_size: int = 256,
    epochs: int = 4,
    frames_per_proc: int = 128,
) -> tuple[float, float]:
    """PPO training frames/s on the batched env with the starter files' model and defaults (128 frames/env,
    4 epochs), everything on ``device``; the first update is a warm-up. Returns (FPS, share of the time spent
    collecting experience)."""
    import torch_rl
    from benchmarks.collection_timer import CollectionTimer
    from model import ACModel
    from utils.format import get_obss_preprocessor

    torch.manual_seed(0)
    env = BatchedMiniGridEnv(env_id, num_envs, device=device, seed=0)
    obs_space, preprocess = get_obss_preprocessor(env.single_observation_space, use_text=False)
    model = ACModel(obs_space, env.single_action_space)
    with torch_rl.PPOAlgo(
        env,
        model,
        device=device,
        preprocess_obss=preprocess,
        batch_size=batch_size,
        epochs=epochs,
        num_frames_per_proc=frames_per_proc,
    ) as algo:
        timer = CollectionTimer(algo, device)
        algo.update_parameters()
        _sync(torch.device(device))
        timer.seconds = 0.0
        start, frames = time.perf_counter(), 0
        for _ in range(updates):
            frames += algo.update_parameters()["num_frames"]
        _sync(torch.device(device))
        elapsed = time.perf_counter() - start
        return frames / elapsed, timer.seconds / elapsed


def ppo_section(device: str, quick: bool, env_id: str = "MiniGrid-DoorKey-5x5-v0") -> str:
    print(f"\n== PPO training on batched {env_id} (device={device}, default model) ==")
    # (envs, batch size, epochs, frames per env): the defaults, then larger batches, then one epoch per rollout
    configs = [(16, 256, 4, 128), (256, 256, 4, 128), (1024, 4096, 4, 128), (4096, 16384, 1, 32)]
    if quick:
        configs = [(256, 256, 4, 128)]
    if device == "cuda":
        configs = [
            (256, 256, 4, 128),
            (4096, 16384, 4, 128),
            (16384, 65536, 4, 64),
            (16384, 65536, 1, 32),
            (65536, 131072, 2, 32),
        ]
        configs = configs[1:2] if quick else configs
    results = []
    for num_envs, batch, epochs, frames_per_proc in configs:
        updates = 2 if num_envs * frames_per_proc >= 100_000 else 4
        fps, collect_share = measure_ppo_fps(env_id, num_envs, device, updates, batch, epochs, frames_per_proc)
        print(
            f"B={num_envs:<6d} batch {batch:<6d} epochs {epochs} frames/env {frames_per_proc:<4d}: {fps:12,.0f} FPS "
            f"({collect_share:.0%} of the time collecting)",
            flush=True,
        )
        results.append(f"{fps:,.0f} FPS at B={num_envs}, {epochs} epoch(s)")
    return f"PPO training on {env_id}: " + " | ".join(results)


# one id per family for --transfer-env all (the list), with a frame budget for each
TRANSFER_IDS = {
    "MiniGrid-DoorKey-5x5-v0": 400_000,
    "MiniGrid-LavaGapS7-v0": 1_000_000,
    "MiniGrid-FourRooms-v0": 5_000_000,
    "MiniGrid-MultiRoom-N2-S4-v0": 1_000_000,
    "MiniGrid-Dynamic-Obstacles-6x6-v0": 1_000_000,
    "MiniGrid-MemoryS7-v0": 2_000_000,
    "MiniGrid-DistShift1-v0": 1_000_000,
    "MiniGrid-LavaCrossingS9N1-v0": 2_000_000,
    "MiniGrid-KeyCorridorS3R1-v0": 1_000_000,
    "MiniGrid-Unlock-v0": 1_000_000,
    "MiniGrid-UnlockPickup-v0": 3_000_000,
    "MiniGrid-BlockedUnlockPickup-v0": 5_000_000,
    "MiniGrid-ObstructedMaze-1Dl-v0": 3_000_000,
    "MiniGrid-Fetch-5x5-N2-v0": 1_000_000,
    "MiniGrid-GoToObject-6x6-N2-v0": 1_000_000,
    "MiniGrid-GoToDoor-5x5-v0": 1_000_000,
    "MiniGrid-PutNear-6x6-N2-v0": 2_000_000,
    "MiniGrid-RedBlueDoors-6x6-v0": 2_000_000,
}
# families whose mission says what to do: their policies read it (--text), and a lower bar stops training, as in
# the learning benchmark's text row (success >= 0.8)
TEXT_FAMILIES = {"Fetch": 0.8, "GoToObject": 0.8, "GoToDoor": 0.8, "PutNear": 0.8}


def transfer_section(device: str, env_id: str = "MiniGrid-DoorKey-5x5-v0", frames: int = 400_000) -> str:
    """Trains with scripts.train --batched until the mean return reaches 0.9 (or ``frames``), then evaluates the
    policy with scripts.evaluate on the batched env and on real Minigrid: the two should agree within noise.
    Families of ``TEXT_FAMILIES`` train a ``--text`` model (missions as the batched env's tokens) to their bar."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    from torch_rl.envs.minigrid.registry import ENV_FAMILY

    print(f"\n== Transfer: train on batched {env_id}, evaluate batched and on Minigrid's own env ==", flush=True)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as storage:
        env = dict(os.environ, TORCH_RL_STORAGE=storage)
        start = time.perf_counter()
        train = [sys.executable, "-m", "scripts.train", "--algo", "ppo", "--env", env_id, "--model", "b"]
        stop = TEXT_FAMILIES.get(ENV_FAMILY.get(env_id), 0.9)
        train += ["--batched", "--device", device, "--frames", str(frames), "--stop-at-return", str(stop)]
        train += ["--no-recipe"]  # the defaults, plus the flags below: what this benchmark measures
        if "Memory" in env_id:
            train += ["--recurrence", "16"]
        if ENV_FAMILY.get(env_id) in TEXT_FAMILIES:
            train += ["--text"]
        subprocess.run([*train, "--save-interval", "0", "--quiet"], cwd=repo, env=env, check=True)
        wall = time.perf_counter() - start
        with open(os.path.join(storage, "b", "log.csv")) as f:
            trained = f.read().strip().splitlines()[-1].split(",")[1]
        results = {}
        for where in ("batched", "minigrid"):
            evaluate = [sys.executable, "-m", "scripts.evaluate", "--env", env_id, "--model", "b"]
            evaluate += ["--episodes", "200", "--json", "-"] + (["--batched"] if where == "batched" else [])
            out = subprocess.run(evaluate, cwd=repo, env=env, check=True, capture_output=True, text=True).stdout
            results[where] = json.loads(out)

    def summary(r):
        error = r["return_std"] / r["episodes"] ** 0.5
        return f"{r['return_mean']:.3f} ± {error:.3f} (success {r['success_rate']:.0%})"

    line = (
        f"transfer {env_id}: trained {int(trained):,} frames batched ({wall:.0f} s); return over 200 episodes: "
        f"batched {summary(results['batched'])}, real Minigrid {summary(results['minigrid'])}"
    )
    print(line)
    return line


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer batch sizes, shorter runs")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--env", nargs="+", default=None, help="env ids (default: DoorKey-8x8, Empty-8x8)")
    parser.add_argument("--seconds", type=float, default=None, help="time per measurement")
    parser.add_argument("--no-ppo", action="store_true", help="skip the PPO training FPS section")
    parser.add_argument(
        "--table", action="store_true", help="one row per id (default: every supported id), no PPO or transfer"
    )
    parser.add_argument("--batch", type=int, default=None, help="batch size of --table (default: 1024, cuda 65536)")
    parser.add_argument(
        "--ppo-env", nargs="+", default=["MiniGrid-DoorKey-5x5-v0"], help="env ids of the PPO training FPS section"
    )
    parser.add_argument(
        "--no-transfer",
        action="store_true",
        help="skip training on the batched env and evaluating on Minigrid (default: on unless --quick)",
    )
    parser.add_argument(
        "--transfer-env",
        nargs="+",
        default=["MiniGrid-DoorKey-5x5-v0"],
        help="ids of the transfer section ('all': one per family, with a frame budget each)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads (default: leave torch's default)"
    )
    parser.add_argument(
        "--env-threads",
        type=int,
        default=1,
        help="torch threads inside BatchedMiniGridEnv.step (default 1; 0 = use the global torch setting)",
    )
    args = parser.parse_args(argv)

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    env_ids = args.env or (DEFAULT_ENVS[:1] if args.quick else DEFAULT_ENVS)
    batch_sizes = QUICK_BATCH_SIZES if args.quick else BATCH_SIZES
    if args.device == "cuda":
        batch_sizes = CUDA_BATCH_SIZES[1:4] if args.quick else CUDA_BATCH_SIZES
    duration = args.seconds or (0.5 if args.quick else 2.0)

    env_threads = args.env_threads or None
    if args.table:
        batch = args.batch or (65536 if args.device == "cuda" else 1024)
        for line in id_table_section(args.env or MINIGRID_IDS, batch, args.device, args.seconds or 1.0):
            print(line)
        return
    summaries = env_stepping_section(env_ids, batch_sizes, args.device, duration, env_threads)
    torch.set_num_threads(args.threads or 1)  # the learner: one thread is fastest for this small model on CPU
    if not args.no_ppo:
        summaries += [ppo_section(args.device, args.quick, env_id) for env_id in args.ppo_env]
    if not (args.no_transfer or args.quick):
        transfer = (
            TRANSFER_IDS
            if args.transfer_env == ["all"]
            else {i: TRANSFER_IDS.get(i, 400_000) for i in args.transfer_env}
        )
        summaries += [transfer_section(args.device, env_id, frames) for env_id, frames in transfer.items()]

    print()
    for line in summaries:
        print(line)


if __name__ == "__main__":
    main()
