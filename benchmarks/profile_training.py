"""Where the time of a PPO training run goes: collection vs update, and the busiest functions.

    python -m benchmarks.profile_training [--device cpu|cuda] [--procs 16] [--updates 5] [--top 20]

Trains the starter model with PPO on MiniGrid-DoorKey-5x5-v0 (the throughput benchmark's setting: 128 frames per
env, 4 epochs, batch 256) under cProfile, after one warm-up update, and prints the share of the wall time spent
collecting experience and the functions with the most time of their own.
"""

import argparse
import cProfile
import pstats
import time

import torch

ENV_ID = "MiniGrid-DoorKey-5x5-v0"


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.profile_training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--procs", type=int, default=16, help="environments")
    p.add_argument("--workers", type=int, default=None, help="env worker processes (default: torch_rl's)")
    p.add_argument("--updates", type=int, default=5, help="profiled updates")
    p.add_argument("--top", type=int, default=20, help="functions to list")
    args = p.parse_args(argv)
    torch.set_num_threads(1)

    import torch_rl
    from benchmarks.collection_timer import CollectionTimer
    from model import ACModel
    from utils.env import make_envs
    from utils.format import get_obss_preprocessor

    torch.manual_seed(0)
    envs = make_envs(ENV_ID, args.procs)
    obs_space, preprocess = get_obss_preprocessor(envs[0].observation_space, use_text=False)
    model = ACModel(obs_space, envs[0].action_space)
    with torch_rl.PPOAlgo(
        envs, model, device=args.device, preprocess_obss=preprocess, num_workers=args.workers
    ) as algo:
        timer = CollectionTimer(algo, args.device)
        algo.update_parameters()  # warm-up
        timer.seconds = 0.0
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.enable()
        frames = sum(algo.update_parameters()["num_frames"] for _ in range(args.updates))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        profiler.disable()
        wall = time.perf_counter() - start
    print(
        f"# {ENV_ID}, {args.procs} envs, device {args.device}: {frames / wall:,.0f} FPS under the profiler, "
        f"{timer.seconds / wall:.0%} of the time collecting, {1 - timer.seconds / wall:.0%} updating"
    )
    pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
