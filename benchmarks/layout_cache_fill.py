"""How fast ``prepare`` fills a layout cache, on 1 process and on every core.

    python -m benchmarks.layout_cache_fill [--env ID ...] [--layouts-per-proc N] [--procs P]

For every id (default: the 6 ``MiniGrid-WFC-*`` ids, Minigrid's slowest generators), fills a fresh cache in a
temporary folder with ``N`` layouts on 1 process, then ``N * P`` on ``P`` processes (default: every core), and
prints layouts per second of each, start-up of the processes and the final write included, and the speed-up.
The two files hold the same layouts (``tests/test_layout_cache.py`` checks it); only the time differs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from torch_rl.envs.minigrid.prepare import fill
from torch_rl.envs.minigrid.registry import ENV_FAMILY

WFC_IDS = tuple(env_id for env_id, family in ENV_FAMILY.items() if family == "WFC")


def fill_rate(env_id: str, layouts: int, procs: int) -> float:
    """Layouts per second of ``prepare`` filling an empty cache with ``layouts`` layouts on ``procs`` processes."""
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        before, after = fill(env_id, layouts, procs=procs, seed=0, cache_dir=directory)
        elapsed = time.perf_counter() - start
    assert (before, after) == (0, layouts)
    return layouts / elapsed


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", default=list(WFC_IDS), help="ids (default: the 6 WFC ids)")
    parser.add_argument("--layouts-per-proc", type=int, default=8, help="layouts each process makes (default: 8)")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="the parallel run's processes")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores")
    header = f"{'env':34s} {'1 proc':>12s} {f'{args.procs} procs':>12s} {'speed-up':>9s}"
    print(header)
    print("-" * len(header))
    for env_id in args.env:
        one = fill_rate(env_id, args.layouts_per_proc, 1)
        many = fill_rate(env_id, args.layouts_per_proc * args.procs, args.procs)
        short = env_id.replace("MiniGrid-", "")
        print(f"{short:34s} {one:10.2f}/s {many:10.2f}/s {many / one:8.2f}x", flush=True)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
