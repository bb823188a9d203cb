"""Recurrent training speed: the model's forward_sequence against stepping its forward through time.

    python -m benchmarks.recurrent [--quick] [--env MiniGrid-MemoryS7-v0] [--procs 16] [--recurrence 4 8 16]

Trains the starter model with memory (PPO, 128 frames per env, 4 epochs, batch 256) and, for each recurrence,
alternates updates of the two ways of running the sequences in one process: the algorithm's fast path, which
calls ``forward_sequence`` once per mini-batch (conv net and heads on all rows at once, the LSTM cell stepping
through time), and the per-step loop a model without it gets. Prints the update time, the training FPS of each
and their ratio; both compute the same updates (tests/test_sequence_model.py checks that).
"""

import argparse
import time

import torch


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.recurrent", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="fewer updates (noisier)")
    p.add_argument("--env", default="MiniGrid-MemoryS7-v0", help="environment id")
    p.add_argument("--procs", type=int, default=16, help="environments")
    p.add_argument("--recurrence", type=int, nargs="+", default=[4, 8, 16], help="recurrences to measure")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # as scripts.train on 2 cores: the other core steps the envs

    import torch_rl
    from model import ACModel
    from utils.env import make_envs
    from utils.format import get_obss_preprocessor

    updates = 2 if args.quick else 5
    envs = make_envs(args.env, args.procs)
    obs_space, preprocess = get_obss_preprocessor(envs[0].observation_space, use_text=False)
    print(f"# {args.env}, {args.procs} envs, PPO 128 frames/env, 4 epochs, batch 256, {updates} updates per way")
    print(f"{'recurrence':>10} {'way':>16} {'update s':>9} {'FPS':>7}")
    for recurrence in args.recurrence:
        torch.manual_seed(0)
        model = ACModel(obs_space, envs[0].action_space, use_memory=True)
        with torch_rl.PPOAlgo(envs, model, preprocess_obss=preprocess, recurrence=recurrence, seed=0) as algo:
            algo.update_parameters()  # warm-up
            seconds = {True: [0.0, 0.0], False: [0.0, 0.0]}  # [update only, whole update_parameters]
            optimize_batch = algo.optimize_batch

            def timed_optimize_batch(exps, starts, optimize_batch=optimize_batch, seconds=seconds):
                start = time.perf_counter()
                stats = optimize_batch(exps, starts)
                seconds[algo.sequence_model][0] += time.perf_counter() - start
                return stats

            algo.optimize_batch = timed_optimize_batch
            frames = 0
            for _ in range(updates):
                for fast in (True, False):  # alternated, so that both see the same machine load
                    algo.sequence_model = fast
                    start = time.perf_counter()
                    frames_now = algo.update_parameters()["num_frames"]
                    seconds[fast][1] += time.perf_counter() - start
                frames += frames_now
        fps = {fast: frames / seconds[fast][1] for fast in seconds}
        for fast, name in ((True, "forward_sequence"), (False, "step by step")):
            print(f"{recurrence:>10} {name:>16} {seconds[fast][0] / updates:>9.3f} {fps[fast]:>7,.0f}")
        print(
            f"{recurrence:>10} {'ratio':>16} {seconds[False][0] / seconds[True][0]:>8.2f}x "
            f"{fps[True] / fps[False]:>6.2f}x"
        )
    for env in envs:
        env.close()


if __name__ == "__main__":
    main()
