"""Minigrid's own resets as layout arrays: what the bank draws from, what its cache stores, what ``prepare`` makes.

Layout i of an id and a base seed is always ``env.reset(seed=base_seed + i)`` of a fresh Minigrid env of that
id, encoded as a dict of per-layout numpy arrays, the first axis indexing layouts:

- ``grid``: (n, H, W) uint8 engine codes (:mod:`.codes`);
- ``agent``: (n, 2) int64 (x, y); ``dir``: (n,) int64;
- ``task``: (n, K, 2) int64, the family's task positions (``Family.num_task_positions``);
- ``mission``: (n,) str;
- ``contents``: (n, H, W) uint8 codes of what each cell's box holds, only for ``Family.box_contents`` families;
- the family's own arrays (``Family.layout_extras``: BabyAI's instruction and objects), by their names;
- ``rejected``: (n,) int64, the lines the level generator printed while making the layout (BabyAI's
  "Sampling rejected: ..."), caught here so that they never reach a trainer's output;
- ``hash``: (n,) int64, a digest of all of the above but ``rejected``, which tells distinct layouts apart (and a
  cache file's arrays from tampered ones).

Arrays travel and are stored by name, so a new per-layout array is one more entry, not a new format.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from typing import Any

import numpy as np

from torch_rl.envs.minigrid import codes as C

HASHED = ("grid", "agent", "dir", "task", "contents")  # in this order, then the family's arrays by name, the mission
NOT_HASHED = HASHED + ("mission", "hash", "rejected")


def code_table() -> np.ndarray:
    """Minigrid encoding (obj, colour, state) -> engine code, 255 where the engine has none."""
    lut = np.full((11, C.N_COLORS, 3), 255, np.uint8)
    for code, enc in enumerate(C.ENCODINGS):
        if code != C.C_UNSEEN:
            lut[enc] = code
    return lut


def make_minigrid_env(env_id: str) -> Any:
    """The unwrapped Minigrid env whose resets are the layouts (WFC ids read torch_rl's pattern images)."""
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the ids)

    from torch_rl.envs.minigrid.wfc import use_shipped_patterns

    use_shipped_patterns()
    return gym.make(env_id).unwrapped


def minigrid_layouts(env_id: str, env: Any, family: Any, seeds: range) -> dict[str, np.ndarray]:
    """The layouts ``env.reset(seed=s)`` for s in ``seeds``, as named arrays (see the module docstring)."""
    lut = code_table()
    n, K = len(seeds), family.num_task_positions
    out = {
        "grid": np.empty((n, family.height, family.width), np.uint8),
        "agent": np.empty((n, 2), np.int64),
        "dir": np.empty(n, np.int64),
        "task": np.zeros((n, K, 2), np.int64),
    }
    contents = np.full((n, family.height, family.width), C.C_EMPTY, np.uint8) if family.box_contents else None
    extras = {name: np.zeros((n, *shape), dtype) for name, (shape, dtype) in family.layout_extras_spec().items()}
    rejected = np.zeros(n, np.int64)
    missions = []
    for k, seed in enumerate(seeds):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            env.reset(seed=seed)
        rejected[k] = printed.getvalue().count("\n")
        enc = env.grid.encode()  # (W, H, 3)
        g = lut[enc[..., 0], enc[..., 1], enc[..., 2]].T
        full_boxes = [i for i, o in enumerate(env.grid.grid) if o is not None and o.type == "box" and o.contains]
        if (g == 255).any() or (full_boxes and contents is None):
            bad = sorted({o.type for o in env.grid.grid if o is not None})
            raise ValueError(f"{env_id}: a layout holds objects the engine cannot represent ({bad})")
        for i in full_boxes:  # Grid.grid is row-major: cell (x, y) is i = y * width + x
            contents[k].flat[i] = C.contents_code_of_object(env.grid.grid[i])
        out["grid"][k] = g
        out["agent"][k] = env.agent_pos
        out["dir"][k] = env.agent_dir
        out["task"][k] = np.asarray(family.task_positions_from_minigrid(env), np.int64).reshape(K, 2)
        missions.append(env.mission)
        for name, value in family.layout_extras(env).items():
            extras[name][k] = value
    if contents is not None:
        out["contents"] = contents
    out.update(extras)
    out["rejected"] = rejected
    out["mission"] = np.array(missions, dtype=str)
    out["hash"] = layout_hashes(out)
    return out


def layout_hashes(layouts: dict[str, np.ndarray]) -> np.ndarray:
    """(n,) int64: an 8-byte blake2b digest of each layout's grid, agent, direction, task, contents and mission."""
    names = [name for name in HASHED if name in layouts] + sorted(n for n in layouts if n not in NOT_HASHED)
    parts = [np.ascontiguousarray(layouts[name]) for name in names]
    hashes = np.empty(len(layouts["dir"]), np.int64)
    for k in range(len(hashes)):
        h = hashlib.blake2b(digest_size=8)
        for part in parts:
            h.update(part[k].tobytes())
        h.update(str(layouts["mission"][k]).encode())
        hashes[k] = int.from_bytes(h.digest(), "little", signed=True)
    return hashes


def concat(chunks: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Layout arrays one after the other (chunks with the same names)."""
    return {name: np.concatenate([c[name] for c in chunks]) for name in chunks[0]}


def length(layouts: dict[str, np.ndarray]) -> int:
    return len(layouts["dir"])
