"""Layouts made by Minigrid's own ``reset``, for families without a native tensor generator.

A background process (``os.nice``: low priority, so it does not starve training of CPU) calls
``env.reset(seed=base_seed + i)`` on a real Minigrid env for i = 0, 1, 2, ... and sends each layout, encoded
as engine codes with the agent's position and direction, the mission and the family's task positions, in
chunks. The env starts once ``initial`` layouts have arrived (about a second for every part-1 family) and the
bank keeps growing while training runs, up to ``capacity`` layouts (100,000 by default); then the worker stops
and the bank stays as it is. Each reset draws a layout uniformly from those that have arrived, with the env's
torch generator, so the episodes follow Minigrid's distribution exactly (drawn with replacement from a large
i.i.d. sample of it).

Repeatability with a seed: layout i of the bank is always Minigrid's ``reset(seed=base_seed + i)``, and the
draws come from the seeded torch generator; what is not repeatable by default is how many layouts have arrived
at each draw (it depends on timing). ``grow_every=k`` makes that deterministic too: before the c-th draw the
bank holds exactly ``min(capacity, initial + chunk * (c // k))`` layouts, waiting for the worker if it is
behind.

The layout cache (:mod:`.layout_cache`): a seeded bank starts from the cache file of its (id, base seed, Minigrid
version), its worker making only the layouts after it, and writes what it adds (in geometric steps at most every
30 s, when the worker is done, and at close). Since layout i is the same wherever it is made, starting from the
cache changes only how soon layouts arrive, never which. A slow generator (``Family.slow_layouts``: WFC) says at
start how many layouts it starts from, and any bank warns once when its episodes run far ahead of its layouts;
both lines name the ``prepare`` command that fills the cache ahead.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import queue as queue_module
import signal
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid import layout_cache
from torch_rl.envs.minigrid.family import Layouts
from torch_rl.envs.minigrid.layouts import length, make_minigrid_env, minigrid_layouts
from torch_rl.envs.minigrid.view import PAD

AHEAD = 100  # episodes per layout in the bank beyond which the bank warns (once) that its generator is behind
NOTE_BELOW = 10_000  # a slow generator's bank starting from fewer layouts says how to cache more


def _generate(env_id: str, base_seed: int, capacity: int, chunk: int, out: Any, nice: int, start: int = 0) -> None:
    """Worker process: layouts ``start`` .. ``capacity - 1`` of ``env_id``, ``chunk`` at a time, into ``out``."""
    # A forked worker inherits the trainer's signal handlers: Ctrl-C in the terminal is the trainer's to handle
    # (it ends the worker through the env's close), and SIGTERM just ends the worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()
    try:
        os.nice(nice)
    except OSError:
        pass
    try:
        from torch_rl.envs.minigrid.registry import make_family

        family = make_family(env_id)
        env = make_minigrid_env(env_id)
        for first in range(start, capacity, chunk):
            if os.getppid() != parent:  # the trainer was killed (e.g. kill -9): an orphan must not go on for hours
                out.cancel_join_thread()  # nobody reads the queue any more: exit without flushing it
                return
            seeds = range(base_seed + first, base_seed + min(first + chunk, capacity))
            out.put(("layouts", minigrid_layouts(env_id, env, family, seeds)))
        out.put(("done",))
    except Exception as error:  # reported to the env, which raises it
        out.put(("error", f"{type(error).__name__}: {error}"))


class _Drawn(Mapping):
    """The drawn layouts' rows of the family's packed arrays, each gathered when read (a reset reads only those
    that the rules of the level need)."""

    def __init__(self, arrays: dict[str, torch.Tensor], idx: torch.Tensor):
        self._arrays, self._idx = arrays, idx

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._arrays[name].index_select(0, self._idx)

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)


def _close_at_exit(bank_ref: weakref.ref) -> None:
    bank = bank_ref()
    if bank is not None:
        bank.close()


class LayoutBank:
    """A growing bank of Minigrid layouts of one id, on ``device``, kept in a layout cache on disk.

    Args:
        env_id: the Minigrid id whose ``reset`` makes the layouts.
        device: where the layouts are kept and drawn.
        seed: base seed of the layouts (layout i is ``reset(seed=seed + i)``); None: a random one (and no cache:
            no later run would ask for its layouts).
        capacity: the bank grows to this many layouts, then stays.
        initial: layouts to wait for before the first draw (None: the family's ``bank_defaults``, else 1024).
        chunk: layouts per message from the worker (None: the family's ``bank_defaults``, else 256).
        grow_every: None (draw from whatever has arrived) or k: the bank grows by one chunk every k draws,
            waiting for it if needed (repeatable with a seed).
        start_timeout: seconds to wait for the worker before giving up.
        cache: start from the layout cache of (id, seed, Minigrid version) and write what the bank adds to it
            (:mod:`.layout_cache`); only with a seed.
        cache_dir: the cache's folder (None: ``$TORCH_RL_CACHE`` or ``~/.cache/torch_rl/layouts``).
    """

    def __init__(
        self,
        env_id: str,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        capacity: int = 100_000,
        initial: int | None = None,
        chunk: int | None = None,
        grow_every: int | None = None,
        start_timeout: float = 120.0,
        nice: int = 10,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
    ):
        from torch_rl.envs.minigrid.registry import make_family

        family = make_family(env_id)
        initial = initial if initial is not None else family.bank_defaults.get("initial", 1024)
        chunk = chunk if chunk is not None else family.bank_defaults.get("chunk", 256)
        if capacity < 1 or initial < 1 or chunk < 1:
            raise ValueError("capacity, initial and chunk must be >= 1")
        self.family = family
        self.env_id = env_id
        self.device = torch.device(device)
        self.capacity = int(capacity)
        self.chunk = int(chunk)
        self.initial = min(self.capacity, -(-int(initial) // self.chunk) * self.chunk)  # whole chunks
        self.grow_every = grow_every
        self.width, self.height = family.width, family.height
        K = family.num_task_positions
        self.seeded = seed is not None
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        dev = self.device
        self.grid = torch.empty(self.capacity, self.height * self.width, dtype=torch.uint8, device=dev)
        self.agent = torch.empty(self.capacity, 2, dtype=torch.int64, device=dev)
        self.dir = torch.empty(self.capacity, dtype=torch.int64, device=dev)
        self.task = torch.empty(self.capacity, K, 2, dtype=torch.int64, device=dev)
        self.mission = torch.empty(self.capacity, dtype=torch.int64, device=dev)
        # what the boxes hold, for families whose boxes hold objects (ObstructedMaze)
        self.contents = (
            torch.empty(self.capacity, self.height * self.width, dtype=torch.uint8, device=dev)
            if family.box_contents
            else None
        )
        self.extras = {
            name: torch.empty(self.capacity, *shape, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, device=dev)
            for name, (shape, dtype) in family.layout_extras_spec().items()
        }
        # what a draw reads, computed once per layout as it arrives: [padded flat agent, direction, mission,
        # distinct-layout number, padded flat task positions...], and the family's packed arrays
        self.start = torch.empty(self.capacity, 4 + K, dtype=torch.int64, device=dev)
        self.packed: dict[str, torch.Tensor] = {}
        self.any_contents = False  # whether a box of a layout received holds something
        self.rejected_samples = 0  # lines the level generator printed (BabyAI's rejection sampling)
        self.hashes = np.empty(self.capacity, np.int64)  # kept on the host: only the cache reads them
        self.unique = torch.empty(self.capacity, dtype=torch.int64, device=dev)  # distinct-layout number
        self.drawn = torch.zeros(self.capacity, dtype=torch.bool, device=dev)  # by distinct-layout number
        self.missions: list[str] = []
        self._mission_index: dict[str, int] = {}
        self._unique_index: dict[int, int] = {}
        self.received = 0  # layouts in the bank: from the cache, then from the worker
        self.size = 0  # layouts drawn from
        self.draws = 0
        self.episodes = 0  # layouts drawn, one per episode started
        self._warned_ahead = False
        self._done = False
        self.started = time.perf_counter()
        self.ready_after_s: float | None = None

        self.cache_path = layout_cache.cache_path(env_id, self.seed, cache_dir) if cache and self.seeded else None
        self._refused = False  # the file at cache_path was refused: the next write replaces it whatever it holds
        self._writer: threading.Thread | None = None  # the cache write in progress, if any
        self.cached = self._load_cache() if self.cache_path is not None else 0  # layouts the run started from
        self.saved = self.cached  # layouts the cache file holds, as far as this bank knows
        self._saved_at = time.perf_counter()

        self._process = None
        # a bank never closed is closed (its layouts written) at exit, while the interpreter can still write files
        atexit.register(_close_at_exit, weakref.ref(self))
        if self.received < self.capacity:
            ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
            self._queue = ctx.Queue()
            self._process = ctx.Process(
                target=_generate,
                args=(env_id, self.seed, self.capacity, self.chunk, self._queue, nice, self.received),
                daemon=True,
                name=f"layout-bank {env_id}",
            )
            self._process.start()
            self._wait_for(self.initial, start_timeout)
        else:
            self._done = True
        self.size = self.received if grow_every is None else self.initial
        self.ready_after_s = time.perf_counter() - self.started
        if family.slow_layouts and self.cached < NOTE_BELOW:
            generated = self.received - self.cached
            rate = f", Minigrid made {generated / self.ready_after_s:.1f} per second here" if generated else ""
            print(f"note: {env_id}: starting from {self.received} layouts ({self.cached} from the layout cache{rate}; "
                  f"more arrive in the background); {self.how_to_cache()}", file=sys.stderr, flush=True)  # fmt: skip

    # ------------------------------------------------------------------
    def how_to_cache(self) -> str:
        """What to run for more distinct layouts, in words."""
        if not self.seeded:
            return "give the env a seed to use the layout cache (the layouts of a random seed are never reused)"
        if self.cache_path is None:
            return "turn the layout cache on (bank_options cache=True) to keep the layouts between runs"
        return (
            f"fill the layout cache ahead on every core: python -m torch_rl.envs.minigrid.prepare --env {self.env_id}"
            f" --seed {self.seed} --layouts 20000 --procs {os.cpu_count() or 1}"
        )

    def intern_mission(self, mission: str) -> int:
        i = self._mission_index.get(mission)
        if i is None:
            i = self._mission_index[mission] = len(self.missions)
            self.missions.append(mission)
        return i

    def _append(self, layouts: dict[str, np.ndarray]) -> None:
        """Layouts ``received`` .. ``received + n - 1`` into the bank (named arrays, :mod:`.layouts`)."""
        n, r = length(layouts), self.received
        dev = self.device
        self.grid[r : r + n] = torch.as_tensor(layouts["grid"].reshape(n, -1), device=dev)
        if self.contents is not None:
            self.contents[r : r + n] = torch.as_tensor(layouts["contents"].reshape(n, -1), device=dev)
        self.agent[r : r + n] = torch.as_tensor(layouts["agent"], device=dev)
        self.dir[r : r + n] = torch.as_tensor(layouts["dir"], device=dev)
        self.task[r : r + n] = torch.as_tensor(layouts["task"], device=dev)
        self.mission[r : r + n] = torch.as_tensor([self.intern_mission(str(m)) for m in layouts["mission"]], device=dev)
        self.hashes[r : r + n] = layouts["hash"]
        for name, values in self.extras.items():
            values[r : r + n] = torch.as_tensor(layouts[name], device=dev)
        self.rejected_samples += int(layouts["rejected"].sum()) if "rejected" in layouts else 0
        unique = [self._unique_index.setdefault(int(h), len(self._unique_index)) for h in layouts["hash"]]
        self.unique[r : r + n] = torch.as_tensor(unique, device=dev)
        self._pack(r, n)
        self.received = r + n

    def _pack(self, r: int, n: int, step: int = 4096) -> None:
        """Layouts ``r`` .. ``r + n - 1`` in the form a draw reads (so that a reset is a few gathers)."""
        Wp = self.width + 2 * PAD
        for a in range(r, r + n, step):
            b = min(a + step, r + n)
            xy, task = self.agent[a:b], self.task[a:b]
            agent = (xy[:, 1] + PAD) * Wp + xy[:, 0] + PAD
            task = (task[..., 1] + PAD) * Wp + task[..., 0] + PAD
            columns = [agent, self.dir[a:b], self.mission[a:b], self.unique[a:b]]
            self.start[a:b] = torch.cat([torch.stack(columns, 1), task], 1)
            if self.contents is not None and not self.any_contents:
                self.any_contents = bool((self.contents[a:b] != C.C_EMPTY).any())
            if not self.extras:
                continue
            new = {name: values[a:b] for name, values in self.extras.items()}
            packed = self.family.pack_layout_extras(new)
            for name, values in packed.items():
                if values is new.get(name):  # the family reads this array as it is: no copy
                    self.packed[name] = self.extras[name]
                    continue
                if name not in self.packed:
                    self.packed[name] = torch.empty(
                        self.capacity, *values.shape[1:], dtype=values.dtype, device=self.device
                    )
                self.packed[name][a:b] = values

    def _receive(self, timeout: float | None) -> bool:
        """Take one message from the worker (waiting up to ``timeout`` s; None: don't wait); False if none."""
        try:
            msg = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue_module.Empty:
            return False
        kind = msg[0]
        if kind == "error":
            self._done = True
            raise RuntimeError(f"the layout bank's worker for {self.env_id} failed: {msg[1]}")
        if kind == "done":
            self._done = True
            return True
        self._append(msg[1])
        return True

    def _wait_for(self, count: int, timeout: float) -> None:
        deadline = time.perf_counter() + timeout
        while self.received < count and not self._done:
            if not self._receive(timeout=0.5) and not self._process.is_alive() and self._queue.empty():
                raise RuntimeError(f"the layout bank's worker for {self.env_id} exited early")
            if time.perf_counter() > deadline:
                raise RuntimeError(
                    f"the layout bank for {self.env_id} got {self.received} of {count} layouts in {timeout:.0f} s"
                )

    def absorb(self) -> None:
        """Take in what the worker has sent (or, with ``grow_every``, exactly what the schedule says)."""
        if self.grow_every is None:
            while not self._done and self._receive(timeout=None):
                pass
            self.size = self.received
        else:
            target = min(self.capacity, self.initial + self.chunk * (self.draws // self.grow_every))
            if target > self.received:
                self._wait_for(target, timeout=600.0)
            self.size = target
        # geometric steps, at most every 30 s, and once the worker is done: writing costs little over a run
        grown = self.received >= 1.25 * self.saved + self.chunk and time.perf_counter() - self._saved_at > 30
        if self.cache_path is not None and self.received > self.saved and (grown or self._done):
            self.save_cache()

    # ------------------------------------------------------------------
    # the layout cache
    # ------------------------------------------------------------------
    def _load_cache(self) -> int:
        """Layouts taken from the cache file (0: none, or refused with one line)."""
        if not self.cache_path.exists():
            return 0
        key = layout_cache.cache_key(self.env_id, self.seed)
        try:
            layouts = layout_cache.load(self.cache_path, key, self.family)
        except layout_cache.CacheRefused as why:
            self._refused = True
            layout_cache.warn(
                f"{self.env_id}: the layout cache {self.cache_path} is refused ({why}); generating layouts instead"
            )
            return 0
        n = min(length(layouts), self.capacity)
        self._append({name: a[:n] for name, a in layouts.items()})
        return n

    def layouts(self) -> dict[str, np.ndarray]:
        """The bank's layouts 0 .. received - 1 as named numpy arrays (:mod:`.layouts`), as the cache stores them."""
        n, shape = self.received, (self.received, self.height, self.width)
        out = {
            "grid": self.grid[:n].cpu().numpy().reshape(shape),
            "agent": self.agent[:n].cpu().numpy(),
            "dir": self.dir[:n].cpu().numpy(),
            "task": self.task[:n].cpu().numpy(),
            "mission": np.array([self.missions[i] for i in self.mission[:n].tolist()], dtype=str),
            "hash": self.hashes[:n].copy(),
        }
        if self.contents is not None:
            out["contents"] = self.contents[:n].cpu().numpy().reshape(shape)
        for name, values in self.extras.items():
            out[name] = values[:n].cpu().numpy()
        return out

    def save_cache(self, wait: bool = False) -> None:
        """Writes the bank's layouts to its cache file, unless the file already holds as many (another run grew
        it: layout i is the same everywhere, so the longer file is the better one). The write runs in a thread
        (compressing 100,000 layouts takes a second or two, which training need not wait for) unless ``wait``;
        while one is running, a new one is skipped (``wait``: waited for). A failed write says so once and turns
        the cache off for this bank; the run goes on."""
        if self._writer is not None and self._writer.is_alive():
            if not wait:
                return
            self._writer.join()
        path, key, count = self.cache_path, layout_cache.cache_key(self.env_id, self.seed), self.received
        if path is None:  # the previous write failed
            return
        snapshot = self.layouts()  # copies: the thread never reads the bank's tensors
        self._saved_at = time.perf_counter()

        def write() -> None:
            try:
                if self._refused or layout_cache.stored_count(path, key) < count:
                    layout_cache.save(path, key, snapshot)
                self.saved, self._refused = count, False
            except OSError as error:
                layout_cache.warn(f"{self.env_id}: cannot write the layout cache {path} ({error}); not caching")
                self.cache_path = None

        if wait:
            write()
        else:
            self._writer = threading.Thread(target=write, name=f"layout-cache {self.env_id}", daemon=True)
            self._writer.start()

    # ------------------------------------------------------------------
    def draw(self, m: int, generator: torch.Generator) -> Layouts:
        """``m`` layouts drawn uniformly (with replacement), as the engine's padded state."""
        self.absorb()
        self.draws += 1
        self.episodes += m
        if self.episodes > AHEAD * self.size and self.size < self.capacity and not self._warned_ahead:
            self._warned_ahead = True
            layout_cache.warn(
                f"{self.env_id}: {self.episodes:,} episodes drawn from a bank of only {self.size:,} layouts (Minigrid "
                f"makes them slowly; more arrive in the background); {self.how_to_cache()}"
            )
        u = torch.rand(m, generator=generator, device=self.device, dtype=torch.float64)
        idx = (u * self.size).long().clamp_(max=self.size - 1)
        start = self.start.index_select(0, idx)
        self.drawn[start[:, 3]] = True
        # the grids' own cells: the engine keeps the padding around them
        grid = self.grid.index_select(0, idx).view(m, self.height, self.width)
        contents = None  # None: every box is empty (the engine then writes C_EMPTY)
        if self.any_contents:
            contents = self.contents.index_select(0, idx).view(m, self.height, self.width)
        extras = _Drawn(self.packed, idx) if self.packed else None
        return Layouts(grid, start[:, 0], start[:, 1], start[:, 4:], start[:, 2], contents, extras)

    def stats(self) -> dict[str, Any]:
        """Bank size, distinct layouts in it and drawn, episodes started, layouts that came from the cache, and how
        long the first ``initial`` layouts took."""
        return {
            "bank_size": self.size,
            "bank_distinct": len(self._unique_index),
            "layouts_drawn": int(self.drawn.sum()),
            "episodes": self.episodes,
            "bank_cached": self.cached,
            "bank_ready_s": self.ready_after_s,
            "rejected_samples": self.rejected_samples,
        }

    def close(self) -> None:
        """Ends the worker and writes what the bank added to its cache file (also what it sent but the bank had
        not taken in yet)."""
        process = getattr(self, "_process", None)
        if getattr(self, "cache_path", None) is not None:
            try:
                while process is not None and not self._done and self._receive(timeout=None):
                    pass
            except RuntimeError:  # the worker failed: that was reported where it happened; keep what came before
                pass
            try:
                if self.received > self.saved:
                    self.save_cache(wait=True)
            except Exception as error:  # closing must not fail (e.g. an interpreter already shutting down)
                layout_cache.warn(f"{self.env_id}: the layout cache was not written at close ({error})")
        if process is not None and process.is_alive():
            process.terminate()
            process.join(timeout=2)
        self._process = None
