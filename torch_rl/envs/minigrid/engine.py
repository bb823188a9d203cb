"""The batched MiniGrid engine: B Minigrid envs of one id stepped as torch tensors (CPU or CUDA).

State: every cell of every grid is a code (:mod:`.codes`), stored flat, ``uint8``, padded by ``PAD`` wall
cells on every side (Minigrid reports cells outside the grid as grey walls, so the padding is exact and the
view can be gathered without bounds checks); the agent's position (a flat index), direction, carried code and
step count; the family's task positions.

Step: Minigrid's ``MiniGridEnv.step`` for every object is one lookup in tables indexed by
``(action, code in front, carried code)``: moving into what can be overlapped (empty, goal, lava, floor, open
door), the goal (reward ``1 - 0.9 * t / T``), lava (ends with reward 0), pickup of keys, balls and boxes, drop
onto an empty cell, toggling doors (locked ones with the key of their colour) and boxes, truncation at
``max_steps``. A family whose boxes hold objects (``Family.box_contents``) also has ``contents``, a per-cell
code of what each box holds, and ``carry_contents``: toggling a box puts its contents in its place, picking a
box up carries its contents with it and dropping it puts them back in the cell, as Minigrid's ``Box`` does
(``contents`` is made when a box holding something first appears: until then every box is empty, and a step
has no contents to follow).
A family (``families/``) adds only what its Minigrid class overrides.

Observation: the 7x7 view is one ``gather`` with per-direction offsets (:mod:`.view`); ``process_vis`` is
reproduced with per-row lookup tables indexed by (visible and see-through bits of the row below, see-through
bits of the row); cells are encoded three at a time through one table. On the CPU the same rule runs as one C
loop (:mod:`.fused`), the same bytes without the ops' fixed cost.
"""

from __future__ import annotations

import contextlib
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector.utils import batch_space

from torch_rl.compiled import CompiledFunction
from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid import fused as fused_loops
from torch_rl.envs.minigrid import view
from torch_rl.envs.minigrid.family import Family
from torch_rl.envs.minigrid.missions import MISSION_WORDS, mission_tokens
from torch_rl.envs.minigrid.registry import SUPPORTED_ENV_IDS, make_family

__all__ = ["BatchedMiniGridEnv", "SUPPORTED_ENV_IDS"]

A_LEFT, A_RIGHT, A_FORWARD, A_PICKUP, A_DROP, A_TOGGLE, A_DONE = range(C.N_ACTIONS)
N_ACTIONS = C.N_ACTIONS
VIEW, PAD = view.VIEW, view.PAD
# Measured on a 2-core CPU (docs/speed.md): a compiled step took 0.76x the eager one's time at 16 envs, the same at
# 128, and 1.5x at 1,024.
COMPILED_VIEW_MAX_CPU_BATCH = 64


def _owned(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Copies of ``tensors`` made outside inference mode: normal tensors, the caller's to keep (see ``step``)."""
    with torch.inference_mode(False):
        return tuple(t.clone() for t in tensors)


def _transition_tables():
    """Minigrid's step as tables indexed by ``(action * N_CODES + front) * N_CODES + carried``."""
    N = C.N_CODES
    n = N_ACTIONS * N * N
    new_front = np.zeros(n, np.uint8)
    new_carry = np.zeros(n, np.int64)
    move = np.zeros(n, bool)
    goal = np.zeros(n, bool)
    lava = np.zeros(n, bool)
    for a in range(N_ACTIONS):
        for f in range(N):
            for c in range(N):
                i = (a * N + f) * N + c
                nf, nc = f, c
                if a == A_PICKUP and C.can_pickup(f) and c == C.C_EMPTY:
                    nf, nc = C.C_EMPTY, f
                elif a == A_DROP and f == C.C_EMPTY and c != C.C_EMPTY:
                    nf, nc = c, C.C_EMPTY
                elif a == A_TOGGLE:
                    nf = C.toggled(f, c)
                new_front[i], new_carry[i] = nf, nc
                move[i] = a == A_FORWARD and C.can_overlap(f)
                goal[i] = a == A_FORWARD and f == C.C_GOAL
                lava[i] = a == A_FORWARD and f == C.C_LAVA
    return new_front, new_carry, move, goal, lava


class BatchedMiniGridEnv(gym.vector.VectorEnv):
    """``num_envs`` copies of a Minigrid env as torch tensors.

    Args:
        env_id: one of :data:`SUPPORTED_ENV_IDS` (registered Minigrid 3.x ids).
        num_envs: batch size ``B``.
        device: torch device for all state and returned tensors.
        seed: optional seed of the layouts (same as ``reset(seed=)``); see docs/batched-envs.md on what a seed repeats.
        num_threads: torch intra-op threads used inside ``reset``/``step`` on CPU (the previous setting is
            restored on return). The default 1 is usually fastest for these small ops and, above all, avoids
            the OpenMP collapse (10-100x slower ops) that multi-threaded torch suffers when the CPU cores are
            shared with other busy processes. ``None`` leaves torch's setting alone. Ignored on CUDA.
        bank_options: keyword arguments of :class:`~torch_rl.envs.minigrid.bank.LayoutBank` for families whose
            layouts come from Minigrid's own ``reset`` (e.g. ``capacity``, ``initial``, ``grow_every``, ``cache``;
            ``seed``: the layouts' base seed, by default the env's ``seed``).
        compile: compute the observation of every step (the 7x7 view with its occlusion, the costliest part of a
            step) with a torch.compile graph for the batch's shape: the same bytes, faster at small batches. On the
            CPU only batches of up to ``COMPILED_VIEW_MAX_CPU_BATCH`` envs are compiled: above, Inductor's code for
            the view's table lookups is slower than the eager ops (docs/speed.md has the figures). A family may
            compile its own per-step rules at any batch (:meth:`compile_function`): BabyAI's verdict. The first
            step compiles. What runs as a C loop (``fused``, below) is not compiled: the loop is faster.
        fused: on the CPU, run the view and BabyAI's verifier step as C loops (:mod:`.fused`): the same
            results as the tensor ops, without their fixed cost per op. None (the default): where a C compiler
            builds them, else tensor ops with a warning; True: required (ValueError without them, or on CUDA);
            False: tensor ops.

    Observations are ``{"image": uint8 (B,7,7,3), "direction": int64 (B,), "mission": list of B str}``,
    identical to Minigrid's ``gen_obs``, and ``"mission_tokens"``: int64 (B, ``max_mission_words``), the missions
    as token ids of the fixed vocabulary in :mod:`.missions` (0-padded), for text models.
    Rewards are float32 ``(B,)``, terminated/truncated bool ``(B,)``, all
    on ``device``. Actions may be a torch tensor (any device), numpy array or sequence of ints in ``0..6``.

    Autoreset is built in (``AutoresetMode.SAME_STEP``): an env whose episode ends in a step returns the first
    observation of its next episode; when any env ended, ``info["final_obs"]`` holds the observation batch
    before the reset (all B rows, valid where ``info["_final_obs"]``, a bool tensor, is True). Without any
    episode end, ``info`` is ``{}``.

    For tests, :meth:`set_state_from_minigrid` copies the state of a real Minigrid env into one row,
    :meth:`get_obs` returns the current observation batch and :meth:`encode_grid` the full grids in Minigrid's
    ``Grid.encode`` layout. :meth:`layout_stats` tells how many distinct layouts the resets drew.

    Resets and steps run in ``torch.inference_mode()`` (faster: see ``step``); what they return are normal tensors,
    the caller's to keep and change. The env's own state (``grid``, ``agent``, ``dir``, ...) is made there too:
    read it freely, but change it only under ``torch.inference_mode()``.
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
        bank_options: dict[str, Any] | None = None,
        compile: bool = False,
        fused: bool | None = None,
    ):
        if num_envs < 1:
            raise ValueError("num_envs must be >= 1")
        self.family: Family = make_family(env_id)
        self.env_id = env_id
        fam = self.family
        self.width, self.height = fam.width, fam.height
        self.size = self.width  # the square families' size (Empty, DoorKey, ...)
        self.max_steps = fam.max_steps  # a family with variable_max_steps keeps each episode's in self.limit
        self.max_mission_words = fam.max_mission_words
        self.see_through_walls = fam.see_through_walls
        self.num_envs = int(num_envs)
        self.device = torch.device(device)
        self.num_threads = num_threads if self.device.type == "cpu" else None
        self.mission = fam.mission  # None: per episode
        self.missions: list[str] = [fam.mission] if fam.mission is not None else []

        import minigrid  # noqa: F401  (registers the ids)

        real = gym.make(env_id).unwrapped  # the observation space's mission space, exactly Minigrid's
        self.single_observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, (VIEW, VIEW, 3), np.uint8),
                "direction": spaces.Discrete(4),
                "mission": real.observation_space["mission"],
                "mission_tokens": spaces.Box(0, len(MISSION_WORDS), (self.max_mission_words,), np.int64),
            }
        )
        self.single_action_space = spaces.Discrete(fam.num_actions)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

        self._build_constants()
        if fused is not None and not isinstance(fused, bool):
            raise TypeError(f"fused must be a bool or None, got {fused!r}")
        # the C loops' library (None: tensor ops), which the view and a family's rules (BabyAI's verifier) use
        self.fused_library = fused_loops.load() if fused is not False and self.device.type == "cpu" else None
        if fused and self.fused_library is None:
            raise ValueError("fused=True needs the CPU and a C compiler (see torch_rl.envs.minigrid.fused)")
        self._fused = self._fused_view()
        # the move as one C loop; for families that add no rules around it, the whole step
        self._fused_step = fused_loops.FusedStep(self.fused_library, self) if self.fused_library is not None else None
        self._plain_step = (
            type(fam).before_step is Family.before_step
            and type(fam).after_step is Family.after_step
            and not fam.variable_max_steps
        )
        self._gen = torch.Generator(device=self.device)
        if seed is not None:
            self._gen.manual_seed(int(seed))
        else:
            self._gen.seed()

        self.bank = None
        if not fam.native:
            from torch_rl.envs.minigrid.bank import LayoutBank

            # layout i is reset(seed=seed + i), unless bank_options names the layouts' own base seed
            options = {"seed": int(seed) if seed is not None else None, **(bank_options or {})}
            self.bank = LayoutBank(env_id, self.device, **options)

        B, dev = self.num_envs, self.device
        self.grid = self.blank_grids(B)  # (B, Hp*Wp) uint8
        self.agent = torch.zeros(B, dtype=torch.int64, device=dev)  # flat index
        self.dir = torch.zeros(B, dtype=torch.int64, device=dev)
        self.carry = torch.zeros(B, dtype=torch.int64, device=dev)  # code, C_EMPTY = nothing
        self.step_count = torch.zeros(B, dtype=torch.int64, device=dev)
        self.task = torch.zeros(B, fam.num_task_positions, dtype=torch.int64, device=dev)
        self.mission_id = torch.zeros(B, dtype=torch.int64, device=dev)
        # what each cell's box holds, and what the carried box holds (C_EMPTY: nothing); None while no box of the
        # family's (Family.box_contents) has held anything
        self.contents: torch.Tensor | None = None
        self.carry_contents = torch.full((B,), C.C_EMPTY, dtype=torch.int64, device=dev)
        self._mission_codes = torch.zeros(0, fam.num_mission_codes, dtype=torch.int64, device=dev)
        self._mission_tokens = torch.zeros(0, self.max_mission_words, dtype=torch.int64, device=dev)
        # each row's mission string and tokens (uint8: fewer bytes to read per step), kept up to date by the resets
        # (None: to rebuild from mission_id)
        self._row_missions: list[str] | None = None
        self._row_tokens: torch.Tensor | None = None
        # each episode's step limit, for families whose limit depends on the episode (else max_steps for all)
        self.limit = torch.full((B,), fam.max_steps, dtype=torch.int64, device=dev) if fam.variable_max_steps else None
        self._all = torch.arange(B, device=dev)
        self._success_reward: torch.Tensor | None = None
        self.step_front = self.step_index = None
        # the whole batch's view, compiled for its one shape (resets of a few rows stay eager: their shapes vary)
        self.compiled = (
            compile and self._fused is None and (self.device.type == "cuda" or B <= COMPILED_VIEW_MAX_CPU_BATCH)
        )
        self._compiled_image = CompiledFunction(self._image) if self.compiled else None
        self.compile_requested = compile
        self._compiled_functions = [self._compiled_image] if self.compiled else []
        fam.init_state(self)
        with self._threads():
            self._reset_rows(self._all)

    # ------------------------------------------------------------------
    # constants
    # ------------------------------------------------------------------
    def _build_constants(self):
        dev = self.device
        W, H, P = self.width, self.height, PAD
        self.Wp = Wp = W + 2 * P
        self.Hp = Hp = H + 2 * P
        blank = np.full((Hp, Wp), C.C_WALL, np.uint8)
        blank[P + 1 : P + H - 1, P + 1 : P + W - 1] = C.C_EMPTY
        self._blank = torch.as_tensor(blank.reshape(-1), device=dev)

        self._delta = torch.tensor([dx + dy * Wp for dx, dy in view.DIR_TO_VEC], device=dev)
        # Internally view cells are ordered row-major, k = j * V + i (view row j = V - 1 is the agent's).
        V = VIEW
        off = np.stack([(dx + dy * Wp).T.reshape(-1) for dx, dy in view.view_offsets(V)])
        self._view_off = torch.as_tensor(off, device=dev)
        self._agent_j = (V - 1) * V + V // 2

        nf, nc, mv, gl, lv = _transition_tables()
        self._t_front = torch.as_tensor(nf, device=dev)
        self._t_carry = torch.as_tensor(nc, device=dev)
        self._t_move = torch.as_tensor(mv, device=dev)
        self._t_goal = torch.as_tensor(gl, device=dev)
        self._t_lava = torch.as_tensor(lv, device=dev)
        left = [(d + 3) % 4 for d in range(4)]
        right = [(d + 1) % 4 for d in range(4)]
        dir_t = np.array([left, right] + [list(range(4))] * 5, np.int64).reshape(-1)
        self._t_dir = torch.as_tensor(dir_t, device=dev)  # [a * 4 + d]

        # see-through bits per view row: t[:, j] = sum_i see[:, j * V + i] * 2**i, one matrix-vector product over
        # the (m * V, V) rows (exact: sums of distinct powers of two; a (49, 7) matrix product was 3x slower)
        self._pow2 = torch.tensor([float(1 << i) for i in range(V)], device=dev)
        first, nxt = view.chained_row_tables(V)
        self._vis_first = torch.as_tensor(first, device=dev)
        self._vis_next = torch.as_tensor(nxt, device=dev)
        self._vis_high = ((1 << V) - 1) << V  # an entry's bits that the row passes on, already shifted
        rowmask = (np.arange(1 << (2 * V))[:, None] >> np.arange(V)[None, :]) & 1  # [entry, i]: its visible bits
        self._rowmask = torch.as_tensor(rowmask.astype(np.float32), device=dev)
        # Encoding: image bytes are in Minigrid order (i, j, channel); cells are encoded three at a time:
        # triple t covers image cells i*7+j = 3t..3t+2 and its table index is sum code * N**(2-p), computed
        # (exactly) as a float matmul that also undoes the row-major cell order. Cells 49, 50 are padding.
        N = C.N_CODES
        n_tri = (V * V + 2) // 3
        w = np.zeros((V * V, n_tri), np.float32)
        for j in range(V):
            for i in range(V):
                k = i * V + j
                w[j * V + i, k // 3] = float(N ** (2 - k % 3))
        self._tri_w = torch.as_tensor(w, device=dev)
        enc = np.array(C.ENCODINGS, np.uint8)
        a, b, c = np.meshgrid(np.arange(N), np.arange(N), np.arange(N), indexing="ij")
        tri = np.concatenate([enc[a.ravel()], enc[b.ravel()], enc[c.ravel()]], 1)  # (N**3, 9)
        self._tri = torch.as_tensor(tri, device=dev)
        self._n_tri = n_tri

        if not self.family.variable_max_steps:
            sc = np.arange(self.max_steps + 1, dtype=np.float64)
            self._reward_tab = torch.as_tensor((1 - 0.9 * (sc / self.max_steps)).astype(np.float32), device=dev)

    def _fused_view(self) -> fused_loops.FusedView | None:
        if self.fused_library is None:
            return None
        encodings = torch.tensor(C.ENCODINGS, dtype=torch.uint8)
        return fused_loops.FusedView(
            self.fused_library,
            self._view_off,
            self._vis_first,
            self._vis_next,
            encodings,
            not self.see_through_walls,
        )

    # ------------------------------------------------------------------
    # helpers for families' layout generators
    # ------------------------------------------------------------------
    def blank_grids(self, m: int) -> torch.Tensor:
        """(m, Hp * Wp) uint8 grids: walls around (and outside) an empty room."""
        return self._blank.unsqueeze(0).expand(m, -1).clone()

    def flat(self, x: torch.Tensor | int, y: torch.Tensor | int) -> torch.Tensor:
        """Padded flat index of grid cell (x, y)."""
        return torch.as_tensor((y + PAD) * self.Wp + (x + PAD), device=self.device)

    def randint(self, n: int, low, high) -> torch.Tensor:
        """Uniform ints in [low, high) (low/high scalars or int64 tensors), from the env's generator."""
        u = torch.rand(n, generator=self._gen, device=self.device, dtype=torch.float64)
        lo = torch.as_tensor(low, device=self.device)
        hi = torch.as_tensor(high, device=self.device)
        r = lo + (u * (hi - lo)).long()
        return torch.minimum(r, hi - 1)

    def choose_cells(self, mask: torch.Tensor) -> torch.Tensor:
        """Per row of ``mask`` (m, n) bool, the index of a True entry drawn uniformly (each row needs one):
        Minigrid's rejection sampling over a region (``place_obj``, ``place_agent``) in one draw."""
        count = mask.sum(1)
        k = self.randint(mask.shape[0], 0, count)
        return ((mask.cumsum(1) == (k + 1).unsqueeze(1)) & mask).to(torch.uint8).argmax(1)

    @property
    def generator(self) -> torch.Generator:
        """The env's torch generator (layouts, and a family's random moves)."""
        return self._gen

    def pad_cells(self, cells: torch.Tensor, fill: int = 0) -> torch.Tensor:
        """(m, Hp * Wp) padded flat grids of per-cell values given as (m, H * W) (row-major), ``fill`` outside."""
        m = cells.shape[0]
        out = torch.full((m, self.Hp * self.Wp), fill, dtype=cells.dtype, device=self.device)
        out.view(m, self.Hp, self.Wp)[:, PAD : PAD + self.height, PAD : PAD + self.width] = cells.view(
            m, self.height, self.width
        )
        return out

    def grid_view(self, grids: torch.Tensor) -> torch.Tensor:
        """(m, Hp, Wp) view of flat padded grids."""
        return grids.view(-1, self.Hp, self.Wp)

    # ------------------------------------------------------------------
    # layouts
    # ------------------------------------------------------------------
    def _reset_rows(self, rows: torch.Tensor) -> None:
        """Fresh episodes for the env indices ``rows`` (int64 tensor)."""
        m = rows.numel()
        if m == 0:
            return
        if self.family.native:
            lay = self.family.generate(self, m)
        else:
            lay = self.bank.draw(m, self._gen)
            self.missions = self.bank.missions
        self._write_cells(self.grid, rows, lay.grid)
        self.agent[rows] = lay.agent
        self.dir[rows] = lay.dir
        self.carry[rows] = C.C_EMPTY
        self.step_count[rows] = 0
        if lay.task is not None and self.task.shape[1]:
            self.task[rows] = lay.task
        if lay.mission is not None:
            self.mission_id[rows] = lay.mission
            self._update_row_missions(rows, lay.mission)
        if lay.contents is not None and self.contents is None:
            self.contents = torch.full_like(self.grid, C.C_EMPTY)
        if self.contents is not None:
            if lay.contents is None:
                self.contents[rows] = C.C_EMPTY
            else:
                self._write_cells(self.contents, rows, lay.contents)
            self.carry_contents[rows] = C.C_EMPTY
        self.family.reset_rows(self, rows, lay)

    def _write_cells(self, grids: torch.Tensor, rows: torch.Tensor, cells: torch.Tensor) -> None:
        """``grids[rows] = cells``, where ``cells`` are padded grids or, (m, H, W), the grid's own cells (the padding
        around them never changes: no step writes there)."""
        if cells.dim() == 3:
            self.grid_view(grids)[:, PAD : PAD + self.height, PAD : PAD + self.width][rows] = cells
        else:
            grids[rows] = cells

    def _refresh_mission_tables(self) -> None:
        """Per mission of the list: its tokens and the codes it names (made once per new mission: the bank
        interns missions as they arrive)."""
        n, done = len(self.missions), self._mission_tokens.shape[0]
        if done == n:
            return
        new = self.missions[done:]
        codes = [self.family.mission_codes(m) for m in new]
        codes = torch.tensor(codes, dtype=torch.int64, device=self.device).view(len(new), -1)
        self._mission_codes = torch.cat([self._mission_codes, codes])
        tokens = mission_tokens(new, self.device, self.max_mission_words)
        self._mission_tokens = torch.cat([self._mission_tokens, tokens])

    def _update_row_missions(self, rows: torch.Tensor, mission: torch.Tensor) -> None:
        """The rows' missions (indices into the mission list) into the per-row caches, if built."""
        if self._row_tokens is None:
            return
        self._refresh_mission_tables()
        missions, cache = self.missions, self._row_missions
        for r, i in zip(rows.tolist(), mission.tolist(), strict=True):
            cache[r] = missions[i]
        self._row_tokens[rows] = self._mission_tokens.index_select(0, mission).to(torch.uint8)

    def _build_row_missions(self) -> None:
        self._refresh_mission_tables()
        self._row_tokens = self._mission_tokens.index_select(0, self._mission_rows()).to(torch.uint8)
        if self.mission is not None:
            self._row_missions = [self.mission] * self.num_envs
        else:
            missions = self.missions
            self._row_missions = [missions[i] for i in self.mission_id.tolist()]

    def _mission_rows(self) -> torch.Tensor:
        """(B,) each env's index in the mission list (0 for a family's one mission)."""
        return self.mission_id if self.mission is None else torch.zeros_like(self.mission_id)

    @property
    def task_codes(self) -> torch.Tensor:
        """(B, ``Family.num_mission_codes``) codes named by each env's mission (``Family.mission_codes``)."""
        self._refresh_mission_tables()
        return self._mission_codes.index_select(0, self._mission_rows())

    def mission_token_ids(self) -> torch.Tensor:
        """(B, ``max_mission_words``) int64 each env's mission as token ids (:mod:`.missions`), 0-padded."""
        if self._row_tokens is None:
            self._build_row_missions()
        return self._row_tokens.long()

    def front_code(self) -> torch.Tensor:
        """(B,) int64 code of the cell in front of each agent."""
        return torch.gather(self.grid, 1, self.front().unsqueeze(1)).view(-1).long()

    def layout_stats(self) -> dict[str, Any]:
        """Where the layouts come from and, for the bank, its size and how many distinct layouts were drawn."""
        if self.bank is None:
            return {"source": "native"}
        return {"source": "bank", **self.bank.stats()}

    # ------------------------------------------------------------------
    # observations
    # ------------------------------------------------------------------
    def _image(self, grid, agent, d, carry) -> torch.Tensor:
        """Minigrid ``gen_obs()["image"]`` for a batch of states, uint8 (m,7,7,3)."""
        return self._render(self._view_codes(grid, agent, d), carry)

    def _view_codes(self, grid, agent, d) -> torch.Tensor:
        """(m, 49) float codes of the view cells, row-major (occlusion not applied yet)."""
        idx = self._view_off.index_select(0, d).add_(agent.unsqueeze(1))
        return torch.gather(grid, 1, idx).float()

    def _render(self, codes, carry) -> torch.Tensor:
        """Image of view codes (m, 49), which it overwrites: occlusion, the carried object, the encoding. A view of
        rows with a few bytes of padding each, which the observation copies out."""
        m = codes.shape[0]
        V = VIEW
        if not self.see_through_walls:
            see = torch.sub(C.C_OPAQUE0, codes).clamp_(0, 1)  # 1 = see behind
            cols = torch.mv(see.view(-1, V), self._pow2).view(m, V).long().unbind(1)  # see-through bits of row j
            # the rows' chained entries (view.chained_row_tables), from the agent's row up
            entry = self._vis_first.index_select(0, cols[V - 1])
            entries = [entry]
            for j in range(V - 2, -1, -1):
                entry = self._vis_next.index_select(0, (entry & self._vis_high).bitwise_or_(cols[j]))
                entries.append(entry)
            vis = torch.stack(entries[::-1], 1)  # (m, V): row j's entry
            codes = codes.mul_(self._rowmask.index_select(0, vis.view(-1)).view(m, V * V))
        codes[:, self._agent_j] = carry  # carried / empty
        tri = torch.mm(codes, self._tri_w).long()  # (m, 17)
        img = self._tri.index_select(0, tri.view(-1)).view(m, 9 * self._n_tri)
        return img[:, : V * V * 3].view(m, V, V, 3)  # strided: _make_obs copies it out

    def _batch_image(self, grid, agent, d, carry) -> torch.Tensor:
        """``_image`` of the whole batch: fused, compiled with ``compile``, or eager."""
        if self._fused is not None:
            return self._fused.render(self._new_image(self.num_envs), grid, agent, d, carry)
        return (self._compiled_image or self._image)(grid, agent, d, carry)

    def _new_image(self, m: int) -> torch.Tensor:
        """An image batch for the fused view to fill, made outside inference mode: the caller's to keep."""
        with torch.inference_mode(False):
            return torch.empty(m, VIEW, VIEW, 3, dtype=torch.uint8, device=self.device)

    @property
    def compile_seconds(self) -> float:
        """The compiled graphs' first calls, compile included (0 until then, and without ``compile``)."""
        return sum(f.seconds for f in self._compiled_functions)

    def compile_function(self, fn, **options):
        """``fn`` as a compiled graph (:class:`~torch_rl.compiled.CompiledFunction` with Inductor ``options``) if the
        env was made with ``compile``, else ``fn``: how a family compiles its own per-step rules."""
        if not self.compile_requested:
            return fn
        compiled = CompiledFunction(fn, options=options or None)
        self._compiled_functions.append(compiled)
        return compiled

    def _mission_list(self) -> list[str]:
        if self._row_missions is None:
            self._build_row_missions()
        return list(self._row_missions)

    def _make_obs(self, image: torch.Tensor | None, d: torch.Tensor, missions: list[str]) -> dict[str, Any]:
        """The observation batch of ``image`` (None: filled in later) and the directions ``d``, its tensors copied
        out as the caller's (normal tensors: see ``step``)."""
        with torch.inference_mode(False):
            if image is not None and image.is_inference():  # (the fused view's image is the caller's already)
                image = image.clone(memory_format=torch.contiguous_format)
            return {
                "image": image,
                "direction": d.clone(),
                "mission": missions,
                "mission_tokens": self.mission_token_ids(),
            }

    def get_obs(self) -> dict[str, Any]:
        """Current observation batch (no state change)."""
        with torch.inference_mode():
            image = self._batch_image(self.grid, self.agent, self.dir, self.carry)
            return self._make_obs(image, self.dir, self._mission_list())

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

    # A step runs in inference mode: its hundreds of small ops skip autograd's bookkeeping (version counters, view
    # tracking), which the env's state never needs (DoorKey-8x8 at B = 16: 210 -> 186 us per step; at B = 1024,
    # where the ops' own work weighs more, 0-5%). What it returns is copied out of it as normal tensors
    # (``_make_obs``, ``_owned``): an inference tensor cannot be changed in place, nor saved for backward, outside
    # inference mode.
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        with self._threads(), torch.inference_mode():
            return self._reset(seed)

    def step(self, actions):
        with self._threads(), torch.inference_mode():
            return self._step(actions)

    def _reset(self, seed):
        if seed is not None:
            if isinstance(seed, (list, tuple)):
                seed = seed[0]
            self._gen.manual_seed(int(seed))
        self._reset_rows(self._all)
        return self.get_obs(), {}

    def front(self) -> torch.Tensor:
        """(B,) padded flat index of the cell in front of each agent."""
        return self.agent + self._delta.index_select(0, self.dir)

    def _step(self, actions):
        if isinstance(actions, torch.Tensor):  # contiguous: the C loops read it by its data pointer
            a = actions.to(self.device, torch.int64).reshape(-1).contiguous()
        else:
            a = torch.as_tensor(np.asarray(actions), dtype=torch.int64, device=self.device).view(-1)
        if a.shape[0] != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {a.shape[0]}")
        fam = self.family
        a = fam.map_actions(self, a)
        fused = self._fused_step if self.contents is None else None  # (boxes' contents: the tensor ops)
        if fused is not None and self._plain_step:
            self._success_reward = None
            return self._observe(*fused.step(self, a.contiguous()))
        context = fam.before_step(self, a)
        front, ti, goal, terminated = self._move(a) if fused is None else fused.move(self, a.contiguous())
        self._success_reward = None  # computed at most once per step, after the move (success_reward)
        # this step's front cells and transition indices, which a family's after_step may read (BabyAI's verifier)
        self.step_front, self.step_index = front, ti
        reward = torch.where(goal, self.success_reward(), 0.0)
        reward, terminated = fam.after_step(self, a, context, reward, terminated)
        self._success_reward = None  # the resets below change step_count
        truncated = self.step_count >= (self.max_steps if self.limit is None else self.limit)

        done = terminated | truncated
        reward, terminated, truncated, ended = _owned(reward, terminated, truncated, done)
        return self._observe(reward, terminated, truncated, ended, done.nonzero().squeeze(1))

    def _move(self, a):
        """The move as tensor ops: the state after it, and (front cells, transition indices, goal, terminated)."""
        N = C.N_CODES
        self.step_count += 1
        front = self.front()
        fcode = torch.gather(self.grid, 1, front.unsqueeze(1)).view(-1).long()
        ti = (a * N + fcode).mul_(N).add_(self.carry)
        new_front = self._t_front.index_select(0, ti)
        if self.contents is not None:
            new_front = self._step_box_contents(a, front, fcode, new_front)
        self.grid.scatter_(1, front.unsqueeze(1), new_front.unsqueeze(1))
        self.carry = self._t_carry.index_select(0, ti)
        self.agent = torch.where(self._t_move.index_select(0, ti), front, self.agent)
        goal = self._t_goal.index_select(0, ti)
        terminated = goal | self._t_lava.index_select(0, ti)
        self.dir = self._t_dir.index_select(0, a * 4 + self.dir)
        return front, ti, goal, terminated

    def _observe(self, reward, terminated, truncated, ended, rows):
        """The step's return: the observations after it, with the ``rows`` that ended reset and their final
        observations in ``info``."""
        if rows.numel() == 0:
            image = self._batch_image(self.grid, self.agent, self.dir, self.carry)
            return self._make_obs(image, self.dir, self._mission_list()), reward, terminated, truncated, {}
        final = self._make_obs(None, self.dir, self._mission_list())
        if self._fused is not None:
            # the batch's view before the resets, then the reset rows' first views written over a copy of it
            final["image"] = self._batch_image(self.grid, self.agent, self.dir, self.carry)
            self._reset_rows(rows)
            with torch.inference_mode(False):
                image = final["image"].clone()
            self._fused.render(image, self.grid, self.agent, self.dir, self.carry, rows)
        elif self._compiled_image is not None:
            # the compiled graph is for the batch's one shape: the ended rows' last views come from it
            image = self._compiled_image(self.grid, self.agent, self.dir, self.carry)
            (final["image"],) = _owned(image)
            self._reset_rows(rows)
            image[rows] = self._image(self.grid[rows], self.agent[rows], self.dir[rows], self.carry[rows])
        else:
            # one view for the batch after the resets with, below it, the ended rows' last views before them
            last_codes = self._view_codes(self.grid[rows], self.agent[rows], self.dir[rows])
            last_carry = self.carry[rows]
            self._reset_rows(rows)
            codes = torch.cat([self._view_codes(self.grid, self.agent, self.dir), last_codes])
            both = self._render(codes, torch.cat([self.carry, last_carry]))
            image = both[: self.num_envs]
            (final["image"],) = _owned(image)
            final["image"][rows] = both[self.num_envs :]
        info = {"final_obs": final, "_final_obs": ended}
        return self._make_obs(image, self.dir, self._mission_list()), reward, terminated, truncated, info

    def _step_box_contents(self, a, front, fcode, new_front) -> torch.Tensor:
        """Box contents through one step (before ``carry`` changes); returns the front cells' new codes."""
        box_in_front = (fcode >= C.C_BOX0) & (fcode < C.C_BOX0 + C.N_COLORS)
        inside = torch.gather(self.contents, 1, front.unsqueeze(1)).view(-1).long()
        opened = (a == A_TOGGLE) & box_in_front  # Box.toggle: the box is replaced by what it holds
        picked = (a == A_PICKUP) & box_in_front & (self.carry == C.C_EMPTY)
        dropped = (a == A_DROP) & (fcode == C.C_EMPTY) & (self.carry >= C.C_BOX0) & (self.carry < C.C_BOX0 + C.N_COLORS)
        empty = torch.full_like(inside, C.C_EMPTY)
        new_inside = torch.where(opened | picked, empty, torch.where(dropped, self.carry_contents, inside))
        self.contents.scatter_(1, front.unsqueeze(1), new_inside.to(torch.uint8).unsqueeze(1))
        self.carry_contents = torch.where(picked, inside, torch.where(dropped, empty, self.carry_contents))
        return torch.where(opened, inside.to(new_front.dtype), new_front)

    def success_reward(self) -> torch.Tensor:
        """(B,) float32 Minigrid's ``_reward()`` at the current step counts: ``1 - 0.9 * step_count / max_steps``
        (computed once in a step, where the engine and the family's rules both ask for it)."""
        if self._success_reward is not None:
            return self._success_reward
        if self.limit is None:
            reward = self._reward_tab.index_select(0, self.step_count.clamp(max=self.max_steps))
        else:  # Minigrid computes it in Python floats (float64), then it is returned as float32 here
            reward = (1 - 0.9 * (self.step_count.double() / self.limit.clamp(min=1).double())).float()
        self._success_reward = reward
        return reward

    def close(self, **kwargs):
        if self.bank is not None:
            self.bank.close()
        self.closed = True

    def __del__(self):
        bank = getattr(self, "bank", None)
        if bank is not None:
            bank.close()

    # ------------------------------------------------------------------
    # interop with real Minigrid envs (fidelity tests)
    # ------------------------------------------------------------------
    @torch.inference_mode()
    def set_state_from_minigrid(self, i: int, env) -> None:
        """Load the state of a real Minigrid env of the same id into row ``i``.

        ``env`` is a Minigrid env (wrapped or not); its ``grid``, ``agent_pos``, ``agent_dir``, ``carrying``,
        ``step_count``, ``mission`` and the family's task state are copied. Objects the engine cannot represent
        (a box with contents) raise ValueError. After this call, ``get_obs()`` row ``i`` equals ``env``'s
        ``gen_obs()`` and stepping row ``i`` follows ``env.step`` exactly.
        """
        u = env.unwrapped
        W, H = self.width, self.height
        if u.grid.width != W or u.grid.height != H:
            raise ValueError(f"grid is {u.grid.width}x{u.grid.height}, env is {W}x{H}")
        if bool(getattr(u, "see_through_walls", self.see_through_walls)) != self.see_through_walls:
            raise ValueError("see_through_walls of the Minigrid env differs from this env's")
        if self.limit is not None:
            self.limit[i] = int(u.max_steps)
        elif u.max_steps != self.max_steps:
            raise ValueError(f"max_steps {u.max_steps} != {self.max_steps}")
        g = np.full((self.Hp, self.Wp), C.C_WALL, np.uint8)
        inside = np.full((self.Hp, self.Wp), C.C_EMPTY, np.uint8)
        for y in range(H):
            for x in range(W):
                g[y + PAD, x + PAD] = C.code_of_object(u.grid.get(x, y))
                inside[y + PAD, x + PAD] = C.contents_code_of_object(u.grid.get(x, y))
        carry = C.code_of_object(u.carrying)
        if u.carrying is not None and not C.can_pickup(carry):
            raise ValueError(f"cannot carry a {u.carrying.type}")
        carry_inside = C.contents_code_of_object(u.carrying)
        if self.contents is None and ((inside != C.C_EMPTY).any() or carry_inside != C.C_EMPTY):
            if not self.family.box_contents:
                raise ValueError(f"{self.env_id}'s family does not have boxes with contents")
            self.contents = torch.full_like(self.grid, C.C_EMPTY)
        if self.contents is not None:
            self.contents[i] = torch.as_tensor(inside.reshape(-1), device=self.device)
        self.carry_contents[i] = carry_inside
        self.grid[i] = torch.as_tensor(g.reshape(-1), device=self.device)
        ax, ay = int(u.agent_pos[0]), int(u.agent_pos[1])
        self.agent[i] = (ay + PAD) * self.Wp + ax + PAD
        self.dir[i] = int(u.agent_dir)
        self.carry[i] = carry
        self.step_count[i] = int(u.step_count)
        positions = self.family.task_positions_from_minigrid(u)
        for k, (x, y) in enumerate(positions):
            self.task[i, k] = (int(y) + PAD) * self.Wp + int(x) + PAD
        if self.mission is None:
            self.mission_id[i] = self.intern_mission(u.mission)
            self._row_missions = self._row_tokens = None  # rebuilt at the next read
        elif u.mission != self.mission:
            raise ValueError(f"mission {u.mission!r} != {self.mission!r}")
        self.family.load_minigrid_state(self, i, u)

    def intern_mission(self, mission: str) -> int:
        """Index of ``mission`` in the mission list (added if new)."""
        if self.bank is not None:
            return self.bank.intern_mission(mission)
        if mission not in self.missions:
            self.missions.append(mission)
        return self.missions.index(mission)

    def encode_grid(self) -> torch.Tensor:
        """Full grids as uint8 ``(B, W, H, 3)``, like Minigrid's ``Grid.encode()``."""
        P = PAD
        g = self.grid_view(self.grid)[:, P : P + self.height, P : P + self.width].long()
        enc = torch.tensor(C.ENCODINGS, dtype=torch.uint8, device=self.device)
        return enc[g].transpose(1, 2).contiguous()

    @property
    def agent_pos(self) -> torch.Tensor:
        """(B, 2) int64 agent (x, y) positions."""
        y, x = self.agent // self.Wp - PAD, self.agent % self.Wp - PAD
        return torch.stack([x, y], 1)

    def __repr__(self):
        return f"BatchedMiniGridEnv({self.env_id}, num_envs={self.num_envs}, device={self.device})"
