"""MiniGrid Empty / DoorKey environments stepped as batched torch tensors.

:class:`BatchedMiniGridEnv` re-implements the dynamics and the partially
observable egocentric observation of Minigrid 3.x's ``EmptyEnv`` and
``DoorKeyEnv`` for ``B`` environments at once, with torch tensor ops only (CPU
or CUDA), and exposes them through the Gymnasium ``VectorEnv`` API with
``SAME_STEP`` autoreset.

Implementation notes
--------------------
* Every cell of every grid is a small integer *code* (see ``_CODES``); the
  grids are stored flat, ``uint8``, padded by ``_PAD`` wall cells on every side
  (Minigrid reports cells outside the grid as grey walls, so the padding is
  exact and the 7x7 view can be gathered without bounds checks).
* The whole transition (pickup / drop / toggle / move / goal) is a lookup in
  precomputed tables indexed by ``(action, code in front, carried code)``.
* The 7x7 view is one ``gather`` with precomputed per-direction offsets; the
  ``process_vis`` occlusion of Minigrid is reproduced exactly with a per-row
  lookup table indexed by (transparent-and-visible bits of the row below,
  transparency bits of the row) -> visible bits of the row.
* Layout generation (DoorKey wall column, door, key, agent position and
  direction; Empty-Random agent) is batched and samples exactly Minigrid's
  distribution (not its RNG stream).
"""

from __future__ import annotations

import contextlib
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

__all__ = ["BatchedMiniGridEnv", "SUPPORTED_ENV_IDS"]

# ---------------------------------------------------------------------------
# Supported environments (mirrors minigrid/__init__.py registrations)
# ---------------------------------------------------------------------------

_EMPTY_MISSION = "get to the green goal square"
_DOORKEY_MISSION = "use the key to open the door and then get to the goal"

# id -> (kind, size, random_start)
_ENV_SPECS: dict[str, tuple[str, int, bool]] = {
    "MiniGrid-Empty-5x5-v0": ("empty", 5, False),
    "MiniGrid-Empty-Random-5x5-v0": ("empty", 5, True),
    "MiniGrid-Empty-6x6-v0": ("empty", 6, False),
    "MiniGrid-Empty-Random-6x6-v0": ("empty", 6, True),
    "MiniGrid-Empty-8x8-v0": ("empty", 8, False),
    "MiniGrid-Empty-16x16-v0": ("empty", 16, False),
    "MiniGrid-DoorKey-5x5-v0": ("doorkey", 5, True),
    "MiniGrid-DoorKey-6x6-v0": ("doorkey", 6, True),
    "MiniGrid-DoorKey-8x8-v0": ("doorkey", 8, True),
    "MiniGrid-DoorKey-16x16-v0": ("doorkey", 16, True),
}
SUPPORTED_ENV_IDS: tuple[str, ...] = tuple(_ENV_SPECS)

# ---------------------------------------------------------------------------
# Cell codes.  Minigrid encoding constants (minigrid/core/constants.py).
# ---------------------------------------------------------------------------

_OBJ = {
    "unseen": 0,
    "empty": 1,
    "wall": 2,
    "floor": 3,
    "door": 4,
    "key": 5,
    "ball": 6,
    "box": 7,
    "goal": 8,
    "lava": 9,
    "agent": 10,
}
_COLOR = {"red": 0, "green": 1, "blue": 2, "purple": 3, "yellow": 4, "grey": 5}
_N_COLORS = 6

# code -> Minigrid (OBJECT_IDX, COLOR_IDX, STATE).  Code 0 is "unseen" (only
# in observations), so masking invisible cells is a multiplication by 0/1;
# see-through codes come first, so "see behind" is ``code < C_OPAQUE0``.
_CODES: list[tuple[int, int, int]] = [(0, 0, 0)]  # 0 unseen
C_UNSEEN = 0
C_EMPTY = len(_CODES)
_CODES.append((_OBJ["empty"], 0, 0))  # 1
C_GOAL = len(_CODES)
_CODES.append((_OBJ["goal"], _COLOR["green"], 0))  # 2
C_KEY0 = len(_CODES)  # key of colour c: C_KEY0 + c
_CODES += [(_OBJ["key"], c, 0) for c in range(_N_COLORS)]
_DOOR_OPEN, _DOOR_CLOSED, _DOOR_LOCKED = 0, 1, 2
C_DOOR_OPEN0 = len(_CODES)  # open door of colour c: C_DOOR_OPEN0 + c
_CODES += [(_OBJ["door"], c, _DOOR_OPEN) for c in range(_N_COLORS)]
C_OPAQUE0 = len(_CODES)  # everything from here on blocks the view
C_WALL = len(_CODES)
_CODES.append((_OBJ["wall"], _COLOR["grey"], 0))
C_DOOR_CLOSED0 = len(_CODES)
_CODES += [(_OBJ["door"], c, _DOOR_CLOSED) for c in range(_N_COLORS)]
C_DOOR_LOCKED0 = len(_CODES)
_CODES += [(_OBJ["door"], c, _DOOR_LOCKED) for c in range(_N_COLORS)]
N_CODES = len(_CODES)
_DOOR_BASE = {_DOOR_OPEN: C_DOOR_OPEN0, _DOOR_CLOSED: C_DOOR_CLOSED0, _DOOR_LOCKED: C_DOOR_LOCKED0}
_ENC_TO_CODE = {enc: i for i, enc in enumerate(_CODES) if i != C_UNSEEN}


def _is_key(c: int) -> bool:
    return C_KEY0 <= c < C_KEY0 + _N_COLORS


def _door_code(color: int, state: int) -> int:
    return _DOOR_BASE[state] + color


def _door(c: int) -> tuple[int, int] | None:
    """(colour, state) of a door code, None for other codes."""
    for state, base in _DOOR_BASE.items():
        if base <= c < base + _N_COLORS:
            return c - base, state
    return None


def _is_door(c: int) -> bool:
    return _door(c) is not None


def _see_behind(c: int) -> bool:
    if c == C_WALL:
        return False
    if _is_door(c):
        return _door(c)[1] == _DOOR_OPEN
    return True


def _can_overlap(c: int) -> bool:
    if c in (C_EMPTY, C_GOAL):
        return True
    if _is_door(c):
        return _door(c)[1] == _DOOR_OPEN
    return False


def _toggle(front: int, carry: int) -> int:
    """Minigrid Door.toggle (the only togglable object in these envs)."""
    if not _is_door(front):
        return front
    color, state = _door(front)
    if state == _DOOR_LOCKED:
        if _is_key(carry) and carry - C_KEY0 == color:
            return _door_code(color, _DOOR_OPEN)
        return front
    new_state = _DOOR_CLOSED if state == _DOOR_OPEN else _DOOR_OPEN
    return _door_code(color, new_state)


# Actions (minigrid.core.actions.Actions)
A_LEFT, A_RIGHT, A_FORWARD, A_PICKUP, A_DROP, A_TOGGLE, A_DONE = range(7)
N_ACTIONS = 7


def _transition_tables():
    """Tables indexed by (action * N_CODES + front) * N_CODES + carry."""
    n = N_ACTIONS * N_CODES * N_CODES
    new_front = np.zeros(n, np.uint8)
    new_carry = np.zeros(n, np.int64)
    move = np.zeros(n, bool)
    goal = np.zeros(n, bool)
    for a in range(N_ACTIONS):
        for f in range(N_CODES):
            for c in range(N_CODES):
                i = (a * N_CODES + f) * N_CODES + c
                nf, nc = f, c
                if a == A_PICKUP and _is_key(f) and c == C_EMPTY:
                    nf, nc = C_EMPTY, f
                elif a == A_DROP and f == C_EMPTY and c != C_EMPTY:
                    nf, nc = c, C_EMPTY
                elif a == A_TOGGLE:
                    nf = _toggle(f, c)
                new_front[i], new_carry[i] = nf, nc
                move[i] = a == A_FORWARD and _can_overlap(f)
                goal[i] = a == A_FORWARD and f == C_GOAL
    return new_front, new_carry, move, goal


def _vis_tables(view: int = 7):
    """Row visibility tables reproducing ``Grid.process_vis``.

    Scanning the (already rotated) view from the agent's row upwards, a row's
    visible set is the closure of its seed set under "a visible, see-through
    cell makes its left/right neighbours visible", and the seed set of the next
    row up is the 3-wide dilation of the visible see-through cells.

    Returns ``first[t]`` (agent row, seeded at the agent column) and
    ``nxt[T * 2**view + t]`` where ``T`` are the visible&see-through bits of
    the row below and ``t`` the see-through bits of the row; bit ``x`` is view
    column ``x``.
    """
    full = (1 << view) - 1

    def closure(seed: int, t: int) -> int:
        vis = seed
        while True:
            tv = vis & t
            new = vis | ((tv << 1) & full) | (tv >> 1)
            if new == vis:
                return vis
            vis = new

    first = np.array([closure(1 << (view // 2), t) for t in range(1 << view)], np.int64)
    nxt = np.zeros(1 << (2 * view), np.int64)
    for below in range(1 << view):
        seed = (below | (below << 1) | (below >> 1)) & full
        for t in range(1 << view):
            nxt[(below << view) | t] = closure(seed, t)
    return first, nxt


_DIR_TO_VEC = [(1, 0), (0, 1), (-1, 0), (0, -1)]
_VIEW = 7
_PAD = _VIEW - 1  # enough for any agent position inside the grid


class BatchedMiniGridEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of a Minigrid Empty/DoorKey env as torch tensors.

    Args:
        env_id: one of :data:`SUPPORTED_ENV_IDS` (the registered Minigrid 3.x
            Empty and DoorKey ids).
        num_envs: batch size ``B``.
        device: torch device for all state and returned tensors.
        seed: optional seed of the layout generator (same as ``reset(seed=)``).
        num_threads: torch intra-op threads used inside ``reset``/``step`` on CPU
            (the previous setting is restored on return).  The default 1 is
            usually fastest for these small ops and, above all, avoids the
            OpenMP collapse (10-100x slower ops) that multi-threaded torch
            suffers when the CPU cores are shared with other busy processes.
            ``None`` leaves torch's setting alone.  Ignored on CUDA.

    Observations are ``{"image": uint8 (B,7,7,3), "direction": int64 (B,),
    "mission": list of B str}``, identical to Minigrid's ``gen_obs``.  Rewards
    are float32 ``(B,)``, terminated/truncated bool ``(B,)``, all on
    ``device``.  Actions may be a torch tensor (any device), numpy array or
    sequence of ints in ``0..6``.

    Autoreset is built in (``AutoresetMode.SAME_STEP``): an env whose episode
    ends in a step returns the first observation of its next episode; when any
    env ended, ``info["final_obs"]`` holds the observation batch before the
    reset (all B rows, valid where ``info["_final_obs"]``, a bool tensor, is
    True).  Without any episode end, ``info`` is ``{}``.

    For tests, :meth:`set_state_from_minigrid` copies the state of a real
    Minigrid env into one row, :meth:`get_obs` returns the current
    observation batch and :meth:`encode_grid` the full grids in Minigrid's
    ``Grid.encode`` layout.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP, "render_modes": []}
    # torch_rl's algorithms hand sampled actions over as tensors on the device (no host round-trip per step)
    accepts_torch_actions = True

    def __init__(
        self,
        env_id: str,
        num_envs: int,
        device: str | torch.device = "cpu",
        seed: int | None = None,
        num_threads: int | None = 1,
    ):
        if env_id not in _ENV_SPECS:
            raise ValueError(
                f"Unsupported env id {env_id!r}; BatchedMiniGridEnv supports: " + ", ".join(SUPPORTED_ENV_IDS)
            )
        if num_envs < 1:
            raise ValueError("num_envs must be >= 1")
        self.env_id = env_id
        self.kind, self.size, self.random_start = _ENV_SPECS[env_id]
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.num_threads = num_threads if self.device.type == "cpu" else None
        self.max_steps = (4 if self.kind == "empty" else 10) * self.size**2
        self.see_through_walls = self.kind == "empty"
        self.mission = _EMPTY_MISSION if self.kind == "empty" else _DOORKEY_MISSION

        from minigrid.core.mission import MissionSpace

        mission = self.mission
        self.single_observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (_VIEW, _VIEW, 3), np.uint8),
                "direction": spaces.Discrete(4),
                "mission": MissionSpace(mission_func=lambda: mission),
            }
        )
        self.single_action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._build_constants()
        self._gen = torch.Generator(device=self.device)
        if seed is not None:
            self._gen.manual_seed(int(seed))
        else:
            self._gen.seed()

        B, dev = self.num_envs, self.device
        self.grid = self._template.repeat(B, 1)  # (B, Hp*Wp) uint8
        self.agent = torch.zeros(B, dtype=torch.int64, device=dev)  # flat index
        self.dir = torch.zeros(B, dtype=torch.int64, device=dev)
        self.carry = torch.zeros(B, dtype=torch.int64, device=dev)  # code, 0 = nothing
        self.step_count = torch.zeros(B, dtype=torch.int64, device=dev)
        self._all = torch.arange(B, device=dev)
        with self._threads():
            self._reset_rows(self._all)

    # ------------------------------------------------------------------
    # constants
    # ------------------------------------------------------------------
    def _build_constants(self):
        dev = self.device
        n, P = self.size, _PAD
        self.Wp = Wp = n + 2 * P
        self.Hp = Hp = n + 2 * P

        tpl = np.full((Hp, Wp), C_WALL, np.uint8)
        tpl[P + 1 : P + n - 1, P + 1 : P + n - 1] = C_EMPTY
        tpl[P + n - 2, P + n - 2] = C_GOAL
        self._template = torch.as_tensor(tpl.reshape(-1), device=dev)

        self._delta = torch.tensor([dx + dy * Wp for dx, dy in _DIR_TO_VEC], device=dev)
        # View offsets.  Internally view cells are ordered row-major, j = y * 7 + x
        # (view row y = 6 is the agent's); image[x, y] sees world cell
        # agent + f * (6 - y) + r * (x - 3), f = dir vec, r = (-fy, fx)
        # (Minigrid's gen_obs_grid slice + rotate_left).
        V = _VIEW
        off = np.zeros((4, V * V), np.int64)
        for d, (fx, fy) in enumerate(_DIR_TO_VEC):
            rx, ry = -fy, fx
            for x in range(V):
                for y in range(V):
                    wx = fx * (V - 1 - y) + rx * (x - V // 2)
                    wy = fy * (V - 1 - y) + ry * (x - V // 2)
                    off[d, y * V + x] = wx + wy * Wp
        self._view_off = torch.as_tensor(off, device=dev)
        self._agent_j = (V - 1) * V + V // 2

        nf, nc, mv, gl = _transition_tables()
        self._t_front = torch.as_tensor(nf, device=dev)
        self._t_carry = torch.as_tensor(nc, device=dev)
        self._t_move = torch.as_tensor(mv, device=dev)
        self._t_goal = torch.as_tensor(gl, device=dev)
        left = [(d + 3) % 4 for d in range(4)]
        right = [(d + 1) % 4 for d in range(4)]
        dir_t = np.array([left, right] + [list(range(4))] * 5, np.int64).reshape(-1)
        self._t_dir = torch.as_tensor(dir_t, device=dev)  # [a * 4 + d]

        # see-through bits per view row: see (m,49) float @ bits (49,7) -> t[:, y], bit x
        bits = np.zeros((V * V, V), np.float32)
        for y in range(V):
            for x in range(V):
                bits[y * V + x, y] = 1 << x
        self._bits = torch.as_tensor(bits, device=dev)
        first, nxt = _vis_tables(V)
        self._vis_first = torch.as_tensor(first, device=dev)
        self._vis_next = torch.as_tensor(nxt, device=dev)
        # row bits -> 0/1 per column: rowmask[v, x] = (v >> x) & 1
        rowmask = (np.arange(1 << V)[:, None] >> np.arange(V)[None, :]) & 1
        self._rowmask = torch.as_tensor(rowmask.astype(np.float32), device=dev)
        # Encoding: image bytes are in Minigrid order (x, y, channel); cells are
        # encoded three at a time: triple i covers image cells x*7+y = 3i..3i+2 and
        # its table index is sum code * 28**(2-p), computed (exactly) as a float
        # matmul that also undoes the y-major cell order.  Cells 49, 50 are padding.
        n_tri = (V * V + 2) // 3
        w = np.zeros((V * V, n_tri), np.float32)
        for y in range(V):
            for x in range(V):
                k = x * V + y
                w[y * V + x, k // 3] = float(N_CODES ** (2 - k % 3))
        self._tri_w = torch.as_tensor(w, device=dev)
        enc = np.array(_CODES, np.uint8)
        a, b, c = np.meshgrid(np.arange(N_CODES), np.arange(N_CODES), np.arange(N_CODES), indexing="ij")
        tri = np.concatenate([enc[a.ravel()], enc[b.ravel()], enc[c.ravel()]], 1)  # (28**3, 9)
        self._tri = torch.as_tensor(tri, device=dev)
        self._n_tri = n_tri

        sc = np.arange(self.max_steps + 1, dtype=np.float64)
        self._reward_tab = torch.as_tensor((1 - 0.9 * (sc / self.max_steps)).astype(np.float32), device=dev)

        # interior coordinates helper
        self._cols = torch.arange(Wp, device=dev).view(1, 1, Wp)
        self._rows = torch.arange(Hp, device=dev).view(1, Hp, 1)

    # ------------------------------------------------------------------
    # layout generation (batched)
    # ------------------------------------------------------------------
    def _flat(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (y + _PAD) * self.Wp + (x + _PAD)

    def _randint(self, n: int, low, high) -> torch.Tensor:
        """Uniform ints in [low, high) (low/high scalars or int64 tensors)."""
        u = torch.rand(n, generator=self._gen, device=self.device, dtype=torch.float64)
        lo = torch.as_tensor(low, device=self.device)
        hi = torch.as_tensor(high, device=self.device)
        r = lo + (u * (hi - lo)).long()
        return torch.minimum(r, hi - 1)

    def _reset_rows(self, rows: torch.Tensor) -> None:
        """Generate fresh layouts for the env indices ``rows`` (int64 tensor)."""
        m = rows.numel()
        if m == 0:
            return
        n = self.size
        dev = self.device
        grid = self._template.unsqueeze(0).expand(m, -1).clone()
        if self.kind == "empty":
            if self.random_start:
                # place_agent(): uniform over empty cells = interior minus goal
                inner = n - 2
                u = self._randint(m, 0, inner * inner - 1)
                x, y = 1 + u % inner, 1 + u // inner
                agent = self._flat(x, y)
                d = self._randint(m, 0, 4)
            else:
                agent = torch.full(
                    (m,), int(self._flat(torch.tensor(1), torch.tensor(1))), dtype=torch.int64, device=dev
                )
                d = torch.zeros(m, dtype=torch.int64, device=dev)
        else:
            split = self._randint(m, 2, n - 2)  # wall column
            # agent: uniform over empty cells with x < split -> x in [1, split-1], y in [1, n-2]
            w = split - 1
            cnt = w * (n - 2)
            ua = self._randint(m, 0, cnt)
            d = self._randint(m, 0, 4)
            door_y = self._randint(m, 1, n - 2)  # _rand_int(1, height - 2)
            # key: uniform over the same cells minus the agent's
            uk = self._randint(m, 0, cnt - 1)
            uk = uk + (uk >= ua).long()
            agent = self._flat(1 + ua % w, 1 + ua // w)
            key = self._flat(1 + uk % w, 1 + uk // w)
            door = self._flat(split, door_y)
            g2 = grid.view(m, self.Hp, self.Wp)
            col = (self._cols == (split + _PAD).view(m, 1, 1)) & (self._rows >= _PAD) & (self._rows < _PAD + n)
            g2.masked_fill_(col, C_WALL)
            locked_yellow = _door_code(_COLOR["yellow"], _DOOR_LOCKED)
            grid.scatter_(1, door.view(m, 1), locked_yellow)
            grid.scatter_(1, key.view(m, 1), C_KEY0 + _COLOR["yellow"])
        self.grid[rows] = grid
        self.agent[rows] = agent
        self.dir[rows] = d
        self.carry[rows] = C_EMPTY
        self.step_count[rows] = 0

    # ------------------------------------------------------------------
    # observations
    # ------------------------------------------------------------------
    def _image(self, grid, agent, d, carry) -> torch.Tensor:
        """Minigrid ``gen_obs()["image"]`` for a batch of states, uint8 (m,7,7,3)."""
        m = agent.shape[0]
        V = _VIEW
        idx = self._view_off.index_select(0, d).add_(agent.unsqueeze(1))  # (m, 49), y-major
        codes = torch.gather(grid, 1, idx).float()  # (m, 49) codes
        if not self.see_through_walls:
            # Grid.process_vis: see-through bits of each view row, then row by row
            # from the agent's row upwards through the lookup tables.
            see = torch.sub(C_OPAQUE0, codes).clamp_(0, 1)  # 1 = see behind
            t = torch.mm(see, self._bits).long()  # (m, 7): t[:, y]
            vis = torch.empty_like(t)
            v = self._vis_first.index_select(0, t[:, V - 1])
            vis[:, V - 1] = v
            for y in range(V - 2, -1, -1):
                v = self._vis_next.index_select(0, ((v & t[:, y + 1]) << V) | t[:, y])
                vis[:, y] = v
            codes = codes.mul_(self._rowmask.index_select(0, vis.view(-1)).view(m, V * V))
        codes[:, self._agent_j] = carry  # carried / empty
        tri = torch.mm(codes, self._tri_w).long()  # (m, 17)
        img = self._tri.index_select(0, tri.view(-1)).view(m, 9 * self._n_tri)
        return img[:, : V * V * 3].contiguous().view(m, V, V, 3)

    def _make_obs(self, image: torch.Tensor, d: torch.Tensor) -> dict[str, Any]:
        return {"image": image, "direction": d, "mission": [self.mission] * image.shape[0]}

    def get_obs(self) -> dict[str, Any]:
        """Current observation batch (no state change)."""
        return self._make_obs(self._image(self.grid, self.agent, self.dir, self.carry), self.dir.clone())

    # ------------------------------------------------------------------
    # Gymnasium API
    # ------------------------------------------------------------------
    @contextlib.contextmanager
    def _threads(self):
        """Run the body with ``self.num_threads`` torch intra-op threads."""
        prev = torch.get_num_threads()
        if self.num_threads is None or prev == self.num_threads:
            yield
            return
        torch.set_num_threads(self.num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(prev)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        with self._threads():
            return self._reset(seed)

    def step(self, actions):
        with self._threads():
            return self._step(actions)

    def _reset(self, seed):
        if seed is not None:
            if isinstance(seed, (list, tuple)):
                seed = seed[0]
            self._gen.manual_seed(int(seed))
        self._reset_rows(self._all)
        return self.get_obs(), {}

    def _step(self, actions):
        if isinstance(actions, torch.Tensor):
            a = actions.to(self.device, torch.int64).view(-1)
        else:
            a = torch.as_tensor(np.asarray(actions), dtype=torch.int64, device=self.device).view(-1)
        if a.shape[0] != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {a.shape[0]}")

        self.step_count += 1
        front = self.agent + self._delta.index_select(0, self.dir)
        fcode = torch.gather(self.grid, 1, front.unsqueeze(1)).view(-1).long()
        ti = (a * N_CODES + fcode).mul_(N_CODES).add_(self.carry)
        self.grid.scatter_(1, front.unsqueeze(1), self._t_front.index_select(0, ti).unsqueeze(1))
        self.carry = self._t_carry.index_select(0, ti)
        self.agent = torch.where(self._t_move.index_select(0, ti), front, self.agent)
        terminated = self._t_goal.index_select(0, ti)
        self.dir = self._t_dir.index_select(0, a * 4 + self.dir)
        sc = self.step_count.clamp(max=self.max_steps)
        reward = torch.where(terminated, self._reward_tab.index_select(0, sc), 0.0)
        truncated = self.step_count >= self.max_steps

        image = self._image(self.grid, self.agent, self.dir, self.carry)
        done = terminated | truncated
        info: dict[str, Any] = {}
        rows = done.nonzero().squeeze(1)
        if rows.numel() > 0:
            info["final_obs"] = self._make_obs(image, self.dir.clone())
            info["_final_obs"] = done
            self._reset_rows(rows)
            image = image.clone()
            image[rows] = self._image(self.grid[rows], self.agent[rows], self.dir[rows], self.carry[rows])
        return self._make_obs(image, self.dir.clone()), reward, terminated, truncated, info

    def close(self, **kwargs):
        self.closed = True

    # ------------------------------------------------------------------
    # interop with real Minigrid envs (fidelity tests)
    # ------------------------------------------------------------------
    def set_state_from_minigrid(self, i: int, env) -> None:
        """Load the state of a real Minigrid env into row ``i``.

        ``env`` is a Minigrid env (wrapped or not) of the same size; its
        ``unwrapped.grid``, ``agent_pos``, ``agent_dir``, ``carrying`` and
        ``step_count`` are copied.  Only empty cells, grey walls, green goals,
        keys and doors are representable; anything else raises ValueError.
        After this call, ``get_obs()`` row ``i`` equals ``env``'s ``gen_obs()``
        and stepping row ``i`` follows ``env.step`` exactly.
        """
        u = env.unwrapped
        n = self.size
        if u.grid.width != n or u.grid.height != n:
            raise ValueError(f"grid is {u.grid.width}x{u.grid.height}, env is {n}x{n}")
        if bool(getattr(u, "see_through_walls", self.see_through_walls)) != self.see_through_walls:
            raise ValueError("see_through_walls of the Minigrid env differs from this env's")
        if u.max_steps != self.max_steps:
            raise ValueError(f"max_steps {u.max_steps} != {self.max_steps}")

        def code(obj) -> int:
            if obj is None:
                return C_EMPTY
            enc = tuple(int(v) for v in obj.encode())
            if enc not in _ENC_TO_CODE:
                raise ValueError(f"unsupported Minigrid object {obj.type}/{obj.color}")
            return _ENC_TO_CODE[enc]

        g = np.full((self.Hp, self.Wp), C_WALL, np.uint8)
        for y in range(n):
            for x in range(n):
                g[y + _PAD, x + _PAD] = code(u.grid.get(x, y))
        ax, ay = int(u.agent_pos[0]), int(u.agent_pos[1])
        carry = code(u.carrying)
        if u.carrying is not None and not _is_key(carry):
            raise ValueError("only keys can be carried")
        self.grid[i] = torch.as_tensor(g.reshape(-1), device=self.device)
        self.agent[i] = (ay + _PAD) * self.Wp + ax + _PAD
        self.dir[i] = int(u.agent_dir)
        self.carry[i] = carry
        self.step_count[i] = int(u.step_count)

    def encode_grid(self) -> torch.Tensor:
        """Full grids as uint8 ``(B, W, H, 3)``, like Minigrid's ``Grid.encode()``."""
        P, n = _PAD, self.size
        g = self.grid.view(-1, self.Hp, self.Wp)[:, P : P + n, P : P + n].long()
        enc = torch.tensor(_CODES, dtype=torch.uint8, device=self.device)
        return enc[g].transpose(1, 2).contiguous()

    @property
    def agent_pos(self) -> torch.Tensor:
        """(B, 2) int64 agent (x, y) positions."""
        y, x = self.agent // self.Wp - _PAD, self.agent % self.Wp - _PAD
        return torch.stack([x, y], 1)

    def __repr__(self):
        return f"BatchedMiniGridEnv({self.env_id}, num_envs={self.num_envs}, device={self.device})"
