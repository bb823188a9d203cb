"""The agent's view of a batch rendered in one C loop on the CPU (``fused_view.c``): the engine's tensor ops, fused.

Why C, written here: a step's view is some twenty small tensor ops (gather the cells, the occlusion's row tables,
the encoding) whose fixed cost per op, not their work, sets the time of a CPU step, and torch has no op that fuses
them. Inductor fused them into slower code than eager (its CPU kernels walk each byte with index arithmetic and
bounds checks: docs/speed.md), and ``torch.jit.script`` is deprecated. The loop is some fifty lines, the same
rule as the tensor ops (:mod:`.view`), and gives the same bytes; the tests compare the two on every family's
states. BabyAI-GoToObjS4 at 1,024 envs: the view in about 80 us against 240 us.

It is compiled once per machine with the system's C compiler (``$CC``, else ``cc``: the compiler torch.compile
uses on the CPU), into the user's cache (``$XDG_CACHE_HOME/torch_rl``, else ``~/.cache/torch_rl``), and loaded
with ctypes, which releases the GIL for the call. Where no compiler works, :func:`load` warns once and returns
None, and the engine keeps its tensor ops. CUDA always uses the tensor ops.
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

import torch

SOURCE = Path(__file__).with_name("fused_view.c")
FLAGS = ("-O3", "-shared", "-fPIC")  # no -march=native: one cached build serves any CPU of this machine's kind
_P, _I, _INT = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
_ARGTYPES = [_P, _I, _P, _I, _INT, _P, _P, _P, _P, _P, _P, _INT, _I, _P, _P]


@functools.cache
def load():
    """The compiled ``render_views`` as a ctypes function, or None (with one warning) where it cannot be built."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        warnings.warn("no C compiler found: the batched env renders its view with tensor ops (slower)", stacklevel=2)
        return None
    source = SOURCE.read_bytes()
    key = hashlib.sha256(b"\0".join([source, compiler.encode(), " ".join(FLAGS).encode(), sys.platform.encode()]))
    name = f"fused_view-{key.hexdigest()[:16]}.so"
    try:
        library = _cached_build(compiler, name)
        function = ctypes.CDLL(str(library)).render_views
    except (OSError, subprocess.SubprocessError) as error:
        warnings.warn(f"the fused view could not be built ({error}): the batched env uses tensor ops", stacklevel=2)
        return None
    function.restype = None
    function.argtypes = _ARGTYPES
    return function


def _cache_dir() -> Path | None:
    """The user's own cache folder for the build, or None where it is not a plain folder of theirs."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch_rl"
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    # a library loaded from here runs as the user's code: only a real folder of theirs, not a link, is trusted
    if root.is_symlink() or not root.is_dir() or root.stat().st_uid != os.getuid():
        return None
    return root


def _cached_build(compiler: str, name: str) -> Path:
    """The built library: from the cache, else compiled into it (or into a private temporary folder)."""
    folder = _cache_dir()
    if folder is not None and (folder / name).is_file() and not (folder / name).is_symlink():
        return folder / name
    build = Path(tempfile.mkdtemp(prefix="torch_rl-view-"))  # private (0700): nobody else can swap the file
    target = build / name
    subprocess.run([compiler, *FLAGS, "-o", str(target), str(SOURCE)], check=True, capture_output=True, timeout=120)
    if folder is None:
        return target
    # a whole file appears at once (os.replace), so processes building it side by side never load a partial one
    staged = folder / f".{name}.{os.getpid()}"
    shutil.copyfile(target, staged)
    os.replace(staged, folder / name)
    shutil.rmtree(build, ignore_errors=True)
    return folder / name


class FusedView:
    """The view of one engine's batch through the C loop: its constants in the loop's order, bound once."""

    def __init__(
        self,
        function,
        view_off: torch.Tensor,
        vis_first: torch.Tensor,
        vis_next: torch.Tensor,
        encodings: torch.Tensor,
        occlude: bool,
        opaque0: int,
    ):
        V = int(round(view_off.shape[1] ** 0.5))
        # the tensors the loop reads, kept alive here: offsets from row-major (j, i) to Minigrid's image order (i, j)
        self._view_off = view_off.view(4, V, V).transpose(1, 2).contiguous()
        self._vis_first, self._vis_next = vis_first.contiguous(), vis_next.contiguous()
        table = torch.zeros(256, 3, dtype=torch.uint8)
        table[: encodings.shape[0]] = encodings
        self._encodings = table
        self._function = function
        self._constants = (
            self._view_off.data_ptr(),
            self._vis_first.data_ptr(),
            self._vis_next.data_ptr(),
            int(occlude),
            int(opaque0),
            table.data_ptr(),
        )
        self.view = V

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
        for t in (agent, d, carry) if rows is None else (agent, d, carry, rows):
            if t.dtype != torch.int64 or not t.is_contiguous() or t.device.type != "cpu":
                raise RuntimeError("the fused view reads contiguous int64 CPU tensors")
        if grid.dtype != torch.uint8 or grid.stride(1) != 1 or grid.shape[0] != B:
            raise RuntimeError("the fused view reads a (B, cells) uint8 grid")
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
