"""The CPU's C loops: the batched env's view (``fused_view.c``), its move (``fused_step.c``) and BabyAI's verifier
step (``fused_verifier.c``), each the same rule as the engine's tensor ops, fused into one pass over the batch.

Why C, written here: a step of 1,024 envs on the CPU is a few hundred small tensor ops whose fixed cost per op,
not their work, sets its time, and torch has no ops that fuse these. Inductor fused the view into slower code than
eager (its CPU kernels walk each byte with index arithmetic and bounds checks: docs/speed.md), and
``torch.jit.script`` is deprecated. Each loop is a few dozen lines that mirror a documented tensor version
(:mod:`.view` and engine.py for the view, engine.py's ``_move`` and ``_step`` for the move, :mod:`.verifier` for
the verdict), which CUDA runs; the tests compare the two (``tests/test_fused.py``) and run the fidelity tests
against Minigrid on the loops.

The library is compiled once per machine with the system's C compiler (``$CC``, else ``cc``: the compiler
torch.compile uses on the CPU), with the Python modules' constants as ``-D`` flags (each declared once, in
Python), into the user's cache (``$XDG_CACHE_HOME/torch_rl``, else ``~/.cache/torch_rl``), and loaded with ctypes,
which releases the GIL for the call. Where no compiler works, :func:`load` warns once and returns None, and the
engine keeps its tensor ops.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from torch_rl.envs.minigrid import codes, instructions, verifier, view
from torch_rl.envs.minigrid.layout_cache import user_cache_root

SOURCES = tuple(Path(__file__).with_name(name) for name in ("fused_view.c", "fused_step.c", "fused_verifier.c"))
FLAGS = ("-O3", "-shared", "-fPIC")  # no -march=native: one cached build serves any CPU of this machine's kind
_P, _I, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_ARGTYPES = {
    "render_views": [_P, _I, _P, _I, _INT, _P, _P, _P, _P, _P, _P, _INT, _P, _P],
    "engine_step": [_I, _P, _P, _I, *[_P] * 12, _I, *[_P] * 5],
    "engine_move": [_I, _P, _P, _I, *[_P] * 18],
    "verifier_step": [*[_I] * 4, *[_P] * 12, _P, _I, _P, _I, *[_P] * 5, _I, _P, _P, _P],
}
_RESTYPES = {"engine_step": _I, "engine_move": _I}


def defines() -> dict[str, int]:
    """The constants the C loops share with the Python modules, as the compiler's ``-D`` flags."""
    return {
        "V": view.VIEW,
        "C_OPAQUE0": codes.C_OPAQUE0,
        "C_EMPTY": codes.C_EMPTY,
        "C_DOOR_OPEN0": codes.C_DOOR_OPEN0,
        "N_CODES": codes.N_CODES,
        "N_ACTIONS": codes.N_ACTIONS,
        "N_COLORS": codes.N_COLORS,
        "NUM_SLOTS": instructions.NUM_SLOTS,
        "MAX_IDS": instructions.MAX_IDS,
        "UNTRACKED": instructions.UNTRACKED,
        "GOTO": instructions.GOTO,
        "OPEN": instructions.OPEN,
        "PICKUP": instructions.PICKUP,
        "PUTNEXT": instructions.PUTNEXT,
        "A_PICKUP": verifier.A_PICKUP,
        "A_DROP": verifier.A_DROP,
        "A_TOGGLE": verifier.A_TOGGLE,
        "LOGIC_BITS": verifier.LOGIC_BITS,
        **{name: getattr(verifier, name) for name in dir(verifier) if name.startswith(("S_", "F_", "RULE_"))},
    }


def build_spec() -> tuple[str, list[str], str] | None:
    """(compiler, its flags, the library's file name: a hash of the sources, compiler and flags), or None without
    a compiler."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    flags = [*FLAGS, *(f"-D{name}={value}" for name, value in defines().items())]
    parts = [*(source.read_bytes() for source in SOURCES), compiler.encode(), " ".join(flags).encode()]
    key = hashlib.sha256(b"\0".join([*parts, sys.platform.encode()]))
    return compiler, flags, f"fused-{key.hexdigest()[:16]}.so"


@functools.cache
def load() -> ctypes.CDLL | None:
    """The compiled library (its functions typed), or None (with one warning) where it cannot be built."""
    spec = build_spec()
    if spec is None:
        warnings.warn("no C compiler found: the batched env runs its view and verifier as tensor ops", stacklevel=2)
        return None
    compiler, flags, name = spec
    try:
        try:
            library = ctypes.CDLL(str(_cached_build(compiler, flags, name)))
        except OSError:  # a damaged file in the cache (written on a full disk, say): built again over it
            library = ctypes.CDLL(str(_cached_build(compiler, flags, name, rebuild=True)))
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"the C loops could not be built ({error}): the batched env uses tensor ops", stacklevel=2)
        return None
    for function, argtypes in _ARGTYPES.items():
        getattr(library, function).restype = _RESTYPES.get(function)
        getattr(library, function).argtypes = argtypes
    return library


def _cache_dir() -> Path | None:
    """The user's own cache folder for the build, or None where it is not a plain folder of theirs."""
    root = user_cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    # a library loaded from here runs as the user's code: only a real folder of theirs, not a link, is trusted
    if root.is_symlink() or not root.is_dir() or root.stat().st_uid != os.getuid():
        return None
    return root


def _cached_build(compiler: str, flags: list[str], name: str, rebuild: bool = False) -> Path:
    """The built library: from the cache (unless ``rebuild``), else compiled into it (or into a private temporary
    folder)."""
    folder = _cache_dir()
    cached = folder is not None and (folder / name).is_file() and not (folder / name).is_symlink()
    if cached and not rebuild:
        return folder / name
    build = Path(tempfile.mkdtemp(prefix="torch_rl-fused-"))  # private (0700): nobody else can swap the file
    target = build / name
    command = [compiler, *flags, "-o", str(target), *map(str, SOURCES)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    if folder is None:
        return target
    # a whole file appears at once (os.replace), so processes building it side by side never load a partial one
    staged = folder / f".{name}.{os.getpid()}"
    shutil.copyfile(target, staged)
    os.replace(staged, folder / name)
    shutil.rmtree(build, ignore_errors=True)
    return folder / name


def _check_inputs(loop: str, int64s: tuple[torch.Tensor, ...], grid: torch.Tensor, B: int) -> None:
    """Raises unless ``int64s`` are contiguous int64 CPU tensors and ``grid`` a (B, cells) uint8 grid with
    contiguous rows: what the C ``loop`` reads by their data pointers."""
    for t in int64s:
        if t.dtype != torch.int64 or not t.is_contiguous() or t.device.type != "cpu":
            raise RuntimeError(f"{loop} reads contiguous int64 CPU tensors")
    if grid.dtype != torch.uint8 or grid.stride(1) != 1 or grid.shape[0] != B:
        raise RuntimeError(f"{loop} reads a (B, cells) uint8 grid")


class FusedView:
    """The view of one engine's batch through the C loop: its constants in the loop's order, bound once."""

    def __init__(
        self,
        library: ctypes.CDLL,
        view_off: torch.Tensor,
        vis_first: torch.Tensor,
        vis_next: torch.Tensor,
        encodings: torch.Tensor,
        occlude: bool,
    ):
        V = view.VIEW
        # the tensors the loop reads, kept alive here: offsets from row-major (j, i) to Minigrid's image order (i, j)
        self._view_off = view_off.view(4, V, V).transpose(1, 2).contiguous()
        self._vis_first, self._vis_next = vis_first.contiguous(), vis_next.contiguous()
        table = torch.zeros(256, 3, dtype=torch.uint8)
        table[: encodings.shape[0]] = encodings
        self._encodings = table
        self._function = library.render_views
        self._constants = (
            self._view_off.data_ptr(),
            self._vis_first.data_ptr(),
            self._vis_next.data_ptr(),
            int(occlude),
            table.data_ptr(),
        )

    def render(
        self,
        out: torch.Tensor,
        grid: torch.Tensor,
        agent: torch.Tensor,
        d: torch.Tensor,
        carry: torch.Tensor,
        rows: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Writes the views of ``rows`` (None: every row) into ``out``: (len(rows), V, V, 3), or (B, V, V, 3)
        with each view at its row's place when ``out`` has every row. Returns ``out``."""
        B = agent.shape[0]
        m = B if rows is None else rows.shape[0]
        scatter = rows is not None and out.shape[0] == B
        _check_inputs("the fused view", (agent, d, carry) if rows is None else (agent, d, carry, rows), grid, B)
        if out.dtype != torch.uint8 or not out.is_contiguous() or out.shape[0] != (B if scatter else m):
            raise RuntimeError("the fused view writes a contiguous uint8 image of its rows")
        self._function(
            grid.data_ptr(),
            grid.stride(0),
            None if rows is None else rows.data_ptr(),
            m,
            int(scatter),
            agent.data_ptr(),
            d.data_ptr(),
            carry.data_ptr(),
            *self._constants,
            out.data_ptr(),
        )
        return out


class FusedStep:
    """The engine's move (``fused_step.c``) for one engine's batch: its tables bound once, its state read and
    changed at each call. ``step`` is a whole step of a family without rules around the move; ``move`` the move
    alone."""

    def __init__(self, library: ctypes.CDLL, env: Any):
        self._step, self._move = library.engine_step, library.engine_move
        # the tables the loops read, kept alive here (bools as bytes)
        self._tables = tuple(
            t.contiguous()
            for t in (env._delta, env._t_front, env._t_carry, env._t_move, env._t_goal, env._t_lava, env._t_dir)
        )
        self._table_pointers = tuple(t.data_ptr() for t in self._tables)
        # Minigrid's reward at each step count (families with one step limit; BabyAI's differ per episode)
        self._reward_tab = getattr(env, "_reward_tab", None)
        self._rows = torch.empty(env.num_envs, dtype=torch.int64)  # the done rows, rewritten by each step

    @staticmethod
    def _state(env: Any, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(actions, agent, dir, carry, step_count), checked as the loops read them."""
        B = env.num_envs
        state = (actions, env.agent, env.dir, env.carry, env.step_count)
        _check_inputs("the fused step", state, env.grid, B)
        if any(t.shape != (B,) for t in state):
            raise RuntimeError("the fused step reads (B,) tensors")
        return state

    @staticmethod
    def _refused(actions: torch.Tensor) -> IndexError:
        return IndexError(f"actions must be in [0, {codes.N_ACTIONS}), got {actions.tolist()}")

    def step(self, env: Any, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One whole step of every env of ``env`` under ``actions`` (B,), its state changed in place. Returns the
        caller's own ``reward, terminated, truncated, done`` and the done rows (ascending)."""
        if self._reward_tab is None:
            raise RuntimeError("a whole fused step needs the family's one step limit")
        B = env.num_envs
        actions, *state = self._state(env, actions)
        with torch.inference_mode(False):  # normal tensors, the caller's to keep (see BatchedMiniGridEnv.step)
            reward = torch.empty(B, dtype=torch.float32)
            flags = [torch.empty(B, dtype=torch.bool) for _ in range(3)]
        n = self._step(
            B,
            actions.data_ptr(),
            env.grid.data_ptr(),
            env.grid.stride(0),
            *(t.data_ptr() for t in state),
            *self._table_pointers,
            self._reward_tab.data_ptr(),
            env.max_steps,
            reward.data_ptr(),
            *(t.data_ptr() for t in flags),
            self._rows.data_ptr(),
        )
        if n < 0:
            raise self._refused(actions)
        return reward, *flags, self._rows[:n].clone()

    def move(self, env: Any, actions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The move of every env of ``env`` under ``actions`` (B,): the grid and step counts changed in place,
        ``env.agent``, ``dir`` and ``carry`` replaced by new tensors (a family's rules may hold the old ones).
        Returns (front cells, transition indices, goal, terminated), as ``BatchedMiniGridEnv._move``."""
        B = env.num_envs
        actions, *state = self._state(env, actions)
        agent, d, carry, front, index = (torch.empty(B, dtype=torch.int64) for _ in range(5))
        goal, terminated = torch.empty(B, dtype=torch.bool), torch.empty(B, dtype=torch.bool)
        code = self._move(
            B,
            actions.data_ptr(),
            env.grid.data_ptr(),
            env.grid.stride(0),
            *(t.data_ptr() for t in state),
            *self._table_pointers,
            *(t.data_ptr() for t in (agent, d, carry, front, index, goal, terminated)),
        )
        if code < 0:
            raise self._refused(actions)
        env.agent, env.dir, env.carry = agent, d, carry
        return front, index, goal, terminated
