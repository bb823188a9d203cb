"""The agent's view in Minigrid: which world cells it covers, and which of them ``Grid.process_vis`` hides.

Shared by the batched engine (:mod:`torch_rl.envs.minigrid.engine`) and the exact fast observations of real
Minigrid envs (:mod:`torch_rl.envs.fast_obs`), so both read the same geometry and the same occlusion rule.

Geometry: view cell ``(i, j)`` (column, row; the agent sits at ``(V // 2, V - 1)`` facing "up") is the world
cell ``agent_pos + f * dir_vec + l * right_vec`` with ``f = V - 1 - j`` steps forward and ``l = i - V // 2``
steps to the right: Minigrid's ``get_view_exts`` + ``Grid.slice`` + ``rotate_left`` (agent_dir + 1) times.

Occlusion: ``process_vis`` sweeps the view row by row from the agent's row upwards; one row's sweeps depend
only on the visibility bits it received from the row below and its own see-through bits, and write only that
row and the row above. :func:`row_transition` replays Minigrid's loop for one row on bit masks (bit ``i`` is
column ``i``); the tables below are built from it.

The engine walks the view's rows with :func:`chained_row_tables`: each entry holds a row's visibility bits and,
``V`` bits above them, the bits that row passes on (visible and see-through), so the next row's index is the
entry's high half or'ed with that row's see-through bits: three tensor ops per row.
"""

from __future__ import annotations

import functools

import numpy as np

# Minigrid's DIR_TO_VEC: 0 right, 1 down, 2 left, 3 up (y grows downward)
DIR_TO_VEC = ((1, 0), (0, 1), (-1, 0), (0, -1))
VIEW = 7  # Minigrid's default agent_view_size, the one every registered id uses
PAD = VIEW - 1  # wall cells the engine pads each grid side with: any view from inside the grid stays inside


@functools.cache
def view_offsets(view_size: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Per direction ``d``: (dx, dy) world offsets from the agent of the view cells, shape (V, V) indexed [i, j]."""
    V = view_size
    out = []
    for fx, fy in DIR_TO_VEC:
        rx, ry = -fy, fx  # the agent's right-hand side
        i = np.arange(V)[:, None]
        j = np.arange(V)[None, :]
        forward, lateral = V - 1 - j, i - V // 2
        out.append(((forward * fx + lateral * rx).astype(np.int64), (forward * fy + lateral * ry).astype(np.int64)))
    return tuple(out)


def row_transition(view_size: int, incoming: int, see_through: int) -> tuple[int, int]:
    """One row of ``Grid.process_vis`` on bit masks: (final visibility bits of the row, bits set in the row above)."""
    V = view_size
    m = [(incoming >> i) & 1 for i in range(V)]
    tr = [(see_through >> i) & 1 for i in range(V)]
    up = [0] * V
    for i in range(0, V - 1):
        if not m[i] or not tr[i]:
            continue
        m[i + 1] = 1
        up[i + 1] = 1
        up[i] = 1
    for i in reversed(range(1, V)):
        if not m[i] or not tr[i]:
            continue
        m[i - 1] = 1
        up[i - 1] = 1
        up[i] = 1
    return sum(b << i for i, b in enumerate(m)), sum(b << i for i, b in enumerate(up))


def agent_row_table(view_size: int) -> np.ndarray:
    """``table[t]``: visibility bits of the agent's row (seeded at the agent's column) given its see-through bits."""
    V = view_size
    return np.array([row_transition(V, 1 << (V // 2), t)[0] for t in range(1 << V)], np.int64)


def next_row_table(view_size: int) -> np.ndarray:
    """``table[(below << V) | t]``: visibility bits of a row from the visible-and-see-through bits ``below`` of
    the row beneath it and its own see-through bits ``t`` (what reaches a row depends only on those)."""
    V = view_size
    full = (1 << V) - 1
    table = np.zeros(1 << (2 * V), np.int64)
    for below in range(1 << V):
        seeded = (below | (below << 1) | (below >> 1)) & full  # the row below's "up" bits
        for t in range(1 << V):
            table[(below << V) | t] = row_transition(V, seeded, t)[0]
    return table


def chained_row_tables(view_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(first, next): :func:`agent_row_table` and :func:`next_row_table` with each entry ``vis`` stored as
    ``vis | ((vis & see_through) << V)``, so that ``(entry & ~full) | t`` indexes the next row's entry."""
    V = view_size
    full = (1 << V) - 1
    first = agent_row_table(V)
    t = np.arange(1 << V)
    first = first | ((first & t) << V)
    nxt = next_row_table(V)
    t = np.arange(1 << (2 * V)) & full
    return first, nxt | ((nxt & t) << V)
