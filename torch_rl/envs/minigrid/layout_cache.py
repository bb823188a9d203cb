"""A file of layouts that outlives the run: the bank starts from it and keeps growing it.

One file per (env id, base seed, Minigrid version): ``<dir>/<env id>-seed<base seed>-minigrid<version>.npz``,
holding layouts 0 .. n-1 of that key (layout i is Minigrid's ``reset(seed=base_seed + i)``,
:mod:`.layouts`), so a file grown by a bank, by ``prepare`` on 1 core or on 16 is the same file.

The folder is ``$TORCH_RL_CACHE`` if set, else ``$XDG_CACHE_HOME/torch_rl/layouts`` (``~/.cache/...``).

A cache file is data, never code, like a model file: a NumPy ``.npz`` of plain arrays (numbers and fixed-width
strings), read with ``allow_pickle=False``. It is checked whole before use: its key, its format, every array
(names, dtypes, shapes against the family, values in range) and every layout's hash recomputed from its
arrays. A file that fails any check (corrupt, truncated, made for another key, another family's shapes) is
refused with one line on stderr and the bank generates instead; it is replaced by the next write. Writes go
to a temporary file in the same folder, renamed over the old one, so a reader never sees half a file and a
symlink at the path is replaced, never written through.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.layouts import layout_hashes, length

FORMAT = 1  # bump when the meaning of the stored arrays changes: older files are then refused, not misread
REQUIRED = {
    "grid": np.uint8, "agent": np.int64, "dir": np.int64, "task": np.int64, "mission": np.str_, "hash": np.int64
}  # fmt: skip
OPTIONAL = {"contents": np.uint8}
KEY_NAMES = ("key_env_id", "key_base_seed", "key_minigrid", "key_format")
PREFIX = "layout_"  # per-layout arrays are stored as layout_<name>, the key as key_<name>


class CacheRefused(Exception):
    """A cache file that must not be used (the message says why, in one line)."""


def minigrid_version() -> str:
    import minigrid

    return str(minigrid.__version__)


def user_cache_root() -> Path:
    """``$XDG_CACHE_HOME/torch_rl`` (default ``~/.cache/torch_rl``): where torch_rl keeps what it can make again
    (the layouts here, the C loops' build: :mod:`.fused`)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "torch_rl"


def default_dir() -> Path:
    """``$TORCH_RL_CACHE``, else ``$XDG_CACHE_HOME/torch_rl/layouts`` (default ``~/.cache/torch_rl/layouts``)."""
    if os.environ.get("TORCH_RL_CACHE"):
        return Path(os.environ["TORCH_RL_CACHE"]).expanduser()
    return user_cache_root() / "layouts"


def cache_key(env_id: str, base_seed: int) -> dict[str, Any]:
    return {"env_id": env_id, "base_seed": int(base_seed), "minigrid": minigrid_version(), "format": FORMAT}


def cache_path(env_id: str, base_seed: int, directory: str | os.PathLike | None = None) -> Path:
    key = cache_key(env_id, base_seed)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{env_id}-seed{key['base_seed']}-minigrid{key['minigrid']}")
    return Path(directory if directory is not None else default_dir()) / f"{safe}.npz"


def warn(message: str) -> None:
    """One line on stderr: the cache never stops a run, it only says what it could not do."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def save(path: Path, key: dict[str, Any], layouts: dict[str, np.ndarray]) -> None:
    """Writes ``layouts`` (named per-layout arrays) with ``key`` to ``path`` atomically (OSError on failure)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    arrays = {f"key_{name}": np.array(value) for name, value in key.items()}
    arrays.update({PREFIX + name: np.ascontiguousarray(a) for name, a in layouts.items()})
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic; a symlink at path is replaced, not followed
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def stored_count(path: Path, key: dict[str, Any]) -> int:
    """Layouts in the file at ``path`` if it was made for ``key``, as its header says, else 0 (not checked whole:
    for a writer deciding whether the file already holds more layouts than it would write)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if {name[4:]: data[name].item() for name in KEY_NAMES} != key:
                return 0
            return int(data[PREFIX + "dir"].shape[0])
    except Exception:
        return 0


def load(path: Path, key: dict[str, Any], family: Any) -> dict[str, np.ndarray]:
    """The layouts in ``path``, checked whole against ``key`` and ``family``; CacheRefused says why not."""
    try:
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as error:
        raise CacheRefused(f"unreadable ({_one_line(error)})") from None
    if magic != b"PK\x03\x04":  # np.load would try a non-zip file as .npy or pickle: neither is a cache
        raise CacheRefused("not an .npz archive of arrays")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as error:  # not a NumPy file, a pickle, a truncated header, ...
        raise CacheRefused(f"unreadable ({_one_line(error)})") from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise CacheRefused("not an .npz archive of arrays")
    try:
        with data:
            arrays = {name: data[name] for name in data.files}  # reads and CRC-checks every member
    except Exception as error:  # a damaged member, an object array (refused by allow_pickle=False), ...
        raise CacheRefused(f"unreadable ({_one_line(error)})") from None
    for name in KEY_NAMES:
        if name not in arrays or arrays[name].shape != ():
            raise CacheRefused(f"no {name} in it")
    stored = {name[4:]: arrays[name].item() for name in KEY_NAMES}
    if stored != key:
        diff = ", ".join(f"{k} {stored[k]!r} (wanted {key[k]!r})" for k in key if stored[k] != key[k])
        raise CacheRefused(f"made for another key: {diff}")
    layouts = {name[len(PREFIX) :]: a for name, a in arrays.items() if name.startswith(PREFIX)}
    check(layouts, family)
    return layouts


def _one_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def check(layouts: dict[str, np.ndarray], family: Any) -> None:
    """CacheRefused unless ``layouts`` are well-formed layouts of ``family`` whose stored hashes match."""
    for name in REQUIRED:
        if name not in layouts:
            raise CacheRefused(f"no {name!r} array")
    if family.box_contents and "contents" not in layouts:
        raise CacheRefused("no 'contents' array, which this family's boxes need")
    n = length(layouts)
    H, W, K = family.height, family.width, family.num_task_positions
    shapes = {"grid": (n, H, W), "agent": (n, 2), "dir": (n,), "task": (n, K, 2), "mission": (n,), "hash": (n,)}
    shapes["contents"] = (n, H, W)
    for name, a in layouts.items():
        dtype = {**REQUIRED, **OPTIONAL}.get(name)
        if dtype is not None and (not np.issubdtype(a.dtype, dtype) or a.shape != shapes[name]):
            raise CacheRefused(f"its {name!r} array is {a.dtype} {a.shape}, not {np.dtype(dtype)} {shapes[name]}")
        if a.dtype.hasobject or a.ndim == 0 or a.shape[0] != n:  # extras: any plain per-layout array
            raise CacheRefused(f"its {name!r} array is not one plain row per layout")
    valid = np.zeros(256, bool)
    valid[: len(C.ENCODINGS)] = True
    valid[C.C_UNSEEN] = False
    for name in ("grid", "contents"):
        if name in layouts and not valid[layouts[name]].all():
            raise CacheRefused(f"its {name!r} array holds codes the engine does not have")
    inside = lambda xy: ((xy >= 0) & (xy < [W, H])).all()  # noqa: E731
    if not inside(layouts["agent"]) or not inside(layouts["task"]) or not np.isin(layouts["dir"], range(4)).all():
        raise CacheRefused("a position or direction is out of range")
    for name, (shape, dtype) in family.layout_extras_spec().items():  # the family's own arrays (BabyAI's)
        a = layouts.get(name)
        if a is None or a.dtype != np.dtype(dtype) or a.shape != (n, *shape):
            raise CacheRefused(f"no {np.dtype(dtype)} {(n, *shape)} {name!r} array, which this family needs")
    try:
        family.check_layout_extras(layouts)
    except ValueError as error:
        raise CacheRefused(str(error)) from None
    if not np.array_equal(layout_hashes(layouts), layouts["hash"]):
        raise CacheRefused("its layouts do not match their hashes")
