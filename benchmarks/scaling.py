"""Data-parallel scaling: training FPS with 1 rank and with K ranks (torchrun), measured side by side.

    python -m benchmarks.scaling [--ranks 1 2] [--procs 16] [--updates 6] [--device cpu|cuda] [--batched]

Each run is `torchrun --nproc-per-node K -m scripts.train ...` in a temporary storage folder; FPS is read from
log.csv (all ranks' frames, first update excluded as warm-up). Scaling efficiency = FPS(K) / (K * FPS(1)).
"""

import argparse
import csv
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(ranks, args):
    with tempfile.TemporaryDirectory() as storage:
        frames = args.updates * ranks * args.procs * 128
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            str(ranks),
            "-m",
            "scripts.train",
            "--algo",
            "ppo",
            "--env",
            args.env,
            "--model",
            "m",
            "--procs",
            str(args.procs),
            "--frames",
            str(frames),
            "--save-interval",
            "0",
            "--quiet",
            "--device",
            args.device,
        ]
        if args.batched:
            command.append("--batched")
        env = dict(os.environ, TORCH_RL_STORAGE=storage, OMP_NUM_THREADS="1")
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"error: the {ranks}-rank run failed:\n{result.stderr[-2000:]}")
        with open(os.path.join(storage, "m", "log.csv")) as f:
            rows = list(csv.DictReader(f))
        fps = [float(r["FPS"]) for r in rows[1:]] or [float(rows[0]["FPS"])]
        return sum(fps) / len(fps)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts to compare (first is the base)")
    p.add_argument("--env", default="MiniGrid-DoorKey-5x5-v0")
    p.add_argument("--procs", type=int, default=16, help="envs per rank")
    p.add_argument("--updates", type=int, default=6)
    p.add_argument("--device", default="cpu")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each rank count keeps its best")
    p.add_argument("--batched", action="store_true", help="use the batched tensor env")
    args = p.parse_args(argv)
    print(f"# {args.env}, PPO, {args.procs} envs per rank, device {args.device}, {os.cpu_count()} CPU cores")
    results = {}
    for round_ in range(args.rounds):  # interleaved rounds, best kept: the shared machine's speed drifts
        for ranks in args.ranks:
            fps = measure(ranks, args)
            results[ranks] = max(results.get(ranks, 0.0), fps)
            print(f"round {round_ + 1}/{args.rounds}, {ranks} rank(s): {fps:8.0f} FPS", flush=True)
    for ranks, fps in results.items():
        print(f"{ranks} rank(s): {fps:8.0f} FPS (best of {args.rounds})")
    base_ranks = args.ranks[0]
    base = results[base_ranks] / base_ranks
    print(
        " | ".join(
            f"{k} ranks: {v / results[base_ranks]:.2f}x, efficiency {v / (k * base):.0%}"
            for k, v in results.items()
            if k != base_ranks
        )
    )


if __name__ == "__main__":
    main()
