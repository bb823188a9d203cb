"""Fill a layout cache ahead of training, on every core: ``python -m torch_rl.envs.minigrid.prepare --env ID
--layouts N --procs P``.

Layout i is Minigrid's ``reset(seed=seed + i)`` whichever process makes it, and chunks are written in order, so
the file is the same on 1 core or on 16. Resumable: it starts from what the cache already holds (a run stopped
with Ctrl-C, or a bank's growth) and writes every half minute, so at most that much work is lost. The bank of a
``BatchedMiniGridEnv`` with the same id and seed then starts from the file (its seed is the env's seed;
``scripts.train`` passes ``--seed``, 1 by default).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import time
from typing import Any

import numpy as np

from torch_rl.envs.minigrid import layout_cache
from torch_rl.envs.minigrid.layouts import concat, length, make_minigrid_env, minigrid_layouts

SAVE_EVERY_S = 30.0
_worker: dict[str, Any] = {}  # per worker process: the env id, its family and its Minigrid env


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage block: the message says what to change
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        raise SystemExit(2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(prog="python -m torch_rl.envs.minigrid.prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="a MiniGrid id whose batched layouts come from the bank")
    parser.add_argument("--layouts", type=int, required=True, help="how many layouts the cache should hold")
    parser.add_argument("--procs", type=int, default=os.cpu_count() or 1, help="processes (default: every core)")
    parser.add_argument("--seed", type=int, default=1, help="layouts' base seed: scripts.train's --seed (default: 1)")
    parser.add_argument("--cache-dir", default=None, help="default: $TORCH_RL_CACHE or ~/.cache/torch_rl/layouts")
    parser.add_argument("--chunk", type=int, default=None, help="layouts per task (default: the bank's chunk)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    from torch_rl.envs.minigrid.registry import ENV_FAMILY, make_family

    if args.env not in ENV_FAMILY:
        parser.error(f"--env {args.env}: not a MiniGrid id the batched engine supports (see the README's list)")
    if make_family(args.env).native:
        parser.error(f"--env {args.env}: its batched layouts are made as tensors at every reset; it needs no cache")
    for name in ("layouts", "procs") + (("chunk",) if args.chunk is not None else ()):
        if getattr(args, name) < 1:
            parser.error(f"--{name} {getattr(args, name)}: must be at least 1")
    if not 0 <= args.seed < 2**63 - 2**40:
        parser.error(f"--seed {args.seed}: must be between 0 and 2**63 - 2**40")
    return args


def _init_worker(env_id: str, in_pool: bool = True) -> None:
    from torch_rl.envs.minigrid.registry import make_family

    if in_pool:  # Ctrl-C is the main process's to handle: it saves what was made and ends the pool
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    _worker.update(env_id=env_id, family=make_family(env_id), env=make_minigrid_env(env_id))


def _make(seeds: range) -> dict[str, np.ndarray]:
    return minigrid_layouts(_worker["env_id"], _worker["env"], _worker["family"], seeds)


def _progress(done: int, total: int, start: int, started: float) -> None:
    rate = (done - start) / max(time.perf_counter() - started, 1e-9)
    eta = (total - done) / rate if rate > 0 else float("inf")
    bar = "#" * int(30 * done / total)
    eta_text = f"{eta / 60:.0f} min" if eta >= 90 else f"{eta:.0f} s" if eta < float("inf") else "?"
    print(f"\r[{bar:<30}] {done:,}/{total:,} layouts, {rate:.1f}/s, {eta_text} left ", end="", file=sys.stderr)


def fill(
    env_id: str,
    layouts: int,
    procs: int = 1,
    seed: int = 1,
    cache_dir: str | os.PathLike | None = None,
    chunk: int | None = None,
    progress: bool = False,
) -> tuple[int, int]:
    """Grows the cache of (``env_id``, ``seed``) to ``layouts`` layouts on ``procs`` processes; returns (layouts it
    held before, layouts it holds now)."""
    from torch_rl.envs.minigrid.registry import make_family

    family = make_family(env_id)
    path = layout_cache.cache_path(env_id, seed, cache_dir)
    key = layout_cache.cache_key(env_id, seed)
    have: list[dict[str, np.ndarray]] = []
    refused = False  # the file was refused: the first write replaces it whatever it holds
    if path.exists():
        try:
            have.append(layout_cache.load(path, key, family))
        except layout_cache.CacheRefused as why:
            refused = True
            layout_cache.warn(f"the layout cache {path} is refused ({why}); it is made again from layout 0")
    start = length(have[0]) if have else 0
    if start >= layouts:
        return start, start
    chunk = chunk or family.bank_defaults.get("chunk", 256)
    # chunks small enough that every process has several: the last one does not leave the others idle for long
    chunk = max(1, min(chunk, -(-(layouts - start) // (4 * procs))))
    tasks = [range(seed + i, seed + min(i + chunk, layouts)) for i in range(start, layouts, chunk)]
    done, started, saved_at = start, time.perf_counter(), time.perf_counter()

    def save() -> None:
        nonlocal refused
        merged = concat(have)
        have[:] = [merged]
        # a bank of the same key may have grown the file past this run meanwhile: layout i is the same in
        # both, so the longer file is kept
        if refused or layout_cache.stored_count(path, key) < length(merged):
            layout_cache.save(path, key, merged)
        refused = False

    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(procs, initializer=_init_worker, initargs=(env_id,)) if procs > 1 else None
    try:
        if pool is None:
            _init_worker(env_id, in_pool=False)
        results = pool.imap(_make, tasks) if pool is not None else map(_make, tasks)
        for part in results:  # in order: the file is layouts 0 .. done - 1 at every write
            have.append(part)
            done += length(part)
            if progress:
                _progress(done, layouts, start, started)
            if time.perf_counter() - saved_at > SAVE_EVERY_S and done < layouts:
                save()
                saved_at = time.perf_counter()
    finally:
        if pool is not None:
            pool.terminate()
        if done > start:
            save()  # also after Ctrl-C or an error: what was made is kept, and the next run resumes from it
        if progress:
            print(file=sys.stderr)
    return start, done


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    path = layout_cache.cache_path(args.env, args.seed, args.cache_dir)
    try:
        before, after = fill(
            args.env, args.layouts, args.procs, args.seed, args.cache_dir, args.chunk, progress=not args.quiet
        )
    except KeyboardInterrupt:
        print(f"interrupted: {path} keeps the layouts made so far; run the same command to resume", file=sys.stderr)
        raise SystemExit(130) from None
    except OSError as error:
        print(f"error: cannot write the layout cache {path}: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as error:  # Minigrid's generator raised: what was made before is kept
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"error: making layouts of {args.env} failed: {type(error).__name__}: {first}", file=sys.stderr)
        raise SystemExit(1) from None
    made = "already held" if after == before else f"now holds (it held {before:,})"
    print(f"{path} {made} {after:,} layouts of {args.env}, seed {args.seed}")


if __name__ == "__main__":
    main()
