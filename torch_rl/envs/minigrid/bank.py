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
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import multiprocessing as mp
import os
import queue as queue_module
import signal
import time
from typing import Any

import numpy as np
import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Layouts
from torch_rl.envs.minigrid.view import PAD


def _code_table() -> np.ndarray:
    """Minigrid encoding (obj, colour, state) -> engine code, 255 where the engine has none."""
    lut = np.full((11, C.N_COLORS, 3), 255, np.uint8)
    for code, enc in enumerate(C.ENCODINGS):
        if code != C.C_UNSEEN:
            lut[enc] = code
    return lut


def _generate(env_id: str, base_seed: int, capacity: int, chunk: int, out: Any, nice: int) -> None:
    """Worker process: Minigrid layouts of ``env_id``, ``chunk`` at a time, into the queue ``out``."""
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
        import gymnasium as gym
        import minigrid  # noqa: F401  (registers the ids)

        from torch_rl.envs.minigrid.registry import make_family

        family = make_family(env_id)
        env = gym.make(env_id).unwrapped
        lut = _code_table()
        K = family.num_task_positions
        extras_spec = family.layout_extras_spec()
        # BabyAI's level generators print a line for each rejected sample ("Sampling rejected: ..."): counted
        # here, so that they never reach the trainer's output
        printed = io.StringIO()
        for start in range(0, capacity, chunk):
            if os.getppid() != parent:  # the trainer was killed (e.g. kill -9): an orphan must not go on for hours
                out.cancel_join_thread()  # nobody reads the queue any more: exit without flushing it
                return
            n = min(chunk, capacity - start)
            grids = np.empty((n, family.height, family.width), np.uint8)
            agent = np.empty((n, 2), np.int64)
            dirs = np.empty(n, np.int64)
            task = np.zeros((n, K, 2), np.int64)
            hashes = np.empty(n, np.int64)
            contents = np.full((n, family.height, family.width), C.C_EMPTY, np.uint8) if family.box_contents else None
            missions = []
            extras = {name: np.zeros((n, *shape), dtype) for name, (shape, dtype) in extras_spec.items()}
            for k in range(n):
                with contextlib.redirect_stdout(printed):
                    env.reset(seed=base_seed + start + k)
                enc = env.grid.encode()  # (W, H, 3)
                g = lut[enc[..., 0], enc[..., 1], enc[..., 2]].T
                full_boxes = [
                    i for i, o in enumerate(env.grid.grid) if o is not None and o.type == "box" and o.contains
                ]
                if (g == 255).any() or (full_boxes and contents is None):
                    bad = sorted({o.type for o in env.grid.grid if o is not None})
                    raise ValueError(f"{env_id}: a layout holds objects the engine cannot represent ({bad})")
                for i in full_boxes:  # Grid.grid is row-major: cell (x, y) is i = y * width + x
                    contents[k].flat[i] = C.contents_code_of_object(env.grid.grid[i])
                grids[k] = g
                agent[k] = env.agent_pos
                dirs[k] = env.agent_dir
                task[k] = np.asarray(family.task_positions_from_minigrid(env), np.int64).reshape(K, 2)
                missions.append(env.mission)
                for name, value in family.layout_extras(env).items():
                    extras[name][k] = value
                h = hashlib.blake2b(digest_size=8)
                for part in (g, agent[k], dirs[k : k + 1], task[k]) + (() if contents is None else (contents[k],)):
                    h.update(part.tobytes())
                for name in sorted(extras):
                    h.update(extras[name][k].tobytes())
                h.update(env.mission.encode())
                hashes[k] = int.from_bytes(h.digest(), "little", signed=True)
            rejected = printed.getvalue().count("\n")
            printed.seek(0)
            printed.truncate()
            out.put(("layouts", grids, agent, dirs, task, missions, hashes, contents, extras, rejected))
        out.put(("done",))
    except Exception as error:  # reported to the env, which raises it
        out.put(("error", f"{type(error).__name__}: {error}"))


class LayoutBank:
    """A growing bank of Minigrid layouts of one id, on ``device``.

    Args:
        env_id: the Minigrid id whose ``reset`` makes the layouts.
        device: where the layouts are kept and drawn.
        seed: base seed of the layouts (layout i is ``reset(seed=seed + i)``); None: a random one.
        capacity: the bank grows to this many layouts, then stays.
        initial: layouts to wait for before the first draw.
        chunk: layouts per message from the worker.
        grow_every: None (draw from whatever has arrived) or k: the bank grows by one chunk every k draws,
            waiting for it if needed (repeatable with a seed).
        start_timeout: seconds to wait for the worker before giving up.
    """

    def __init__(
        self,
        env_id: str,
        device: torch.device | str = "cpu",
        seed: int | None = None,
        capacity: int = 100_000,
        initial: int = 1024,
        chunk: int = 256,
        grow_every: int | None = None,
        start_timeout: float = 120.0,
        nice: int = 10,
    ):
        from torch_rl.envs.minigrid.registry import make_family

        if capacity < 1 or initial < 1 or chunk < 1:
            raise ValueError("capacity, initial and chunk must be >= 1")
        family = make_family(env_id)
        self.env_id = env_id
        self.device = torch.device(device)
        self.capacity = int(capacity)
        self.chunk = int(chunk)
        self.initial = min(self.capacity, -(-int(initial) // self.chunk) * self.chunk)  # whole chunks
        self.grow_every = grow_every
        self.width, self.height = family.width, family.height
        K = family.num_task_positions
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
        self.rejected_samples = 0  # lines the level generator printed (BabyAI's rejection sampling)
        self.unique = torch.empty(self.capacity, dtype=torch.int64, device=dev)  # distinct-layout number
        self.drawn = torch.zeros(self.capacity, dtype=torch.bool, device=dev)  # by distinct-layout number
        self.missions: list[str] = []
        self._mission_index: dict[str, int] = {}
        self._unique_index: dict[int, int] = {}
        self.received = 0  # layouts arrived from the worker
        self.size = 0  # layouts drawn from
        self.draws = 0
        self._done = False
        self.started = time.perf_counter()
        self.ready_after_s: float | None = None

        ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self._queue = ctx.Queue()
        self._process = ctx.Process(
            target=_generate,
            args=(env_id, self.seed, self.capacity, self.chunk, self._queue, nice),
            daemon=True,
            name=f"layout-bank {env_id}",
        )
        self._process.start()
        self._wait_for(self.initial, start_timeout)
        self.size = self.received if grow_every is None else self.initial
        self.ready_after_s = time.perf_counter() - self.started

    # ------------------------------------------------------------------
    def intern_mission(self, mission: str) -> int:
        i = self._mission_index.get(mission)
        if i is None:
            i = self._mission_index[mission] = len(self.missions)
            self.missions.append(mission)
        return i

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
        _, grids, agent, dirs, task, missions, hashes, contents, extras, rejected = msg
        n, r = len(dirs), self.received
        dev = self.device
        self.rejected_samples += rejected
        for name, values in extras.items():
            self.extras[name][r : r + n] = torch.as_tensor(values, device=dev)
        self.grid[r : r + n] = torch.as_tensor(grids.reshape(n, -1), device=dev)
        if self.contents is not None:
            self.contents[r : r + n] = torch.as_tensor(contents.reshape(n, -1), device=dev)
        self.agent[r : r + n] = torch.as_tensor(agent, device=dev)
        self.dir[r : r + n] = torch.as_tensor(dirs, device=dev)
        self.task[r : r + n] = torch.as_tensor(task, device=dev)
        self.mission[r : r + n] = torch.as_tensor([self.intern_mission(s) for s in missions], device=dev)
        unique = [self._unique_index.setdefault(int(h), len(self._unique_index)) for h in hashes]
        self.unique[r : r + n] = torch.as_tensor(unique, device=dev)
        self.received = r + n
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

    def draw(self, env: Any, m: int, generator: torch.Generator) -> Layouts:
        """``m`` layouts drawn uniformly (with replacement), as the engine's padded state."""
        self.absorb()
        self.draws += 1
        u = torch.rand(m, generator=generator, device=self.device, dtype=torch.float64)
        idx = (u * self.size).long().clamp_(max=self.size - 1)
        self.drawn[self.unique.index_select(0, idx)] = True
        grid = env.blank_grids(m)
        env.grid_view(grid)[:, PAD : PAD + self.height, PAD : PAD + self.width] = self.grid.index_select(0, idx).view(
            m, self.height, self.width
        )
        xy = self.agent.index_select(0, idx)
        agent = (xy[:, 1] + PAD) * env.Wp + xy[:, 0] + PAD
        task_xy = self.task.index_select(0, idx)
        task = (task_xy[..., 1] + PAD) * env.Wp + task_xy[..., 0] + PAD
        contents = None
        if self.contents is not None:
            contents = torch.full_like(grid, C.C_EMPTY)
            env.grid_view(contents)[:, PAD : PAD + self.height, PAD : PAD + self.width] = self.contents.index_select(
                0, idx
            ).view(m, self.height, self.width)
        mission = self.mission.index_select(0, idx)
        extras = {name: values.index_select(0, idx) for name, values in self.extras.items()} or None
        return Layouts(grid, agent, self.dir.index_select(0, idx), task, mission, contents, extras)

    def stats(self) -> dict[str, Any]:
        """Bank size, distinct layouts in it and drawn, and how long the first ``initial`` layouts took."""
        return {
            "bank_size": self.size,
            "bank_distinct": len(self._unique_index),
            "layouts_drawn": int(self.drawn.sum()),
            "bank_ready_s": self.ready_after_s,
            "rejected_samples": self.rejected_samples,
        }

    def close(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.is_alive():
            process.terminate()
            process.join(timeout=2)
        self._process = None
