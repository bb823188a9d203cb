"""Minigrid's CrossingEnv (``minigrid/envs/crossing.py``): ``num_crossings`` rivers of lava (LavaCrossing) or walls
(SimpleCrossing), each a full row or column at an even position, with one opening per river on a random
monotone path from the agent, at (1, 1) facing right, to the goal in the bottom-right corner.

Native tensor generator following ``_gen_grid``: a uniform subset of the candidate rivers, a uniform order of
the path's crossings (right across a column river, down across a row river), and each opening uniform along
the stretch of river bounding the current room. Minigrid's default step (lava ends the episode with reward 0).
"""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Family, Layouts
from torch_rl.envs.minigrid.view import PAD


class CrossingFamily(Family):
    native = True

    def __init__(self, size: int = 9, num_crossings: int = 1, obstacle_type="lava", max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 4 * size**2 if max_steps is None else max_steps
        kind = (obstacle_type if isinstance(obstacle_type, str) else obstacle_type.__name__).lower()
        self.obstacle = {"lava": C.C_LAVA, "wall": C.C_WALL}[kind]
        self.mission = {
            "lava": "avoid the lava and get to the green goal square",
            "wall": "find the opening and get to the green goal square",
        }[kind]
        self.num_crossings = num_crossings

    def generate(self, env, m: int) -> Layouts:
        n, N, dev = self.width, self.num_crossings, env.device
        positions = list(range(2, n - 2, 2))  # candidate rivers, for columns and for rows alike
        rivers = torch.tensor(positions, device=dev)
        K = len(positions)
        gen = env.generator
        # a uniform N-subset of the 2K candidates (columns first, then rows)
        keys = torch.rand(m, 2 * K, generator=gen, device=dev)
        chosen = torch.zeros(m, 2 * K, dtype=torch.bool, device=dev)
        chosen.scatter_(1, keys.topk(N, dim=1, largest=False).indices, True)
        columns, rows = chosen[:, :K], chosen[:, K:]
        grid = env.blank_grids(m)
        g = env.grid_view(grid)
        inner = slice(PAD + 1, PAD + n - 1)  # grid cells 1 .. n-2 in padded coordinates
        for k, position in enumerate(positions):
            p = PAD + position
            g[:, p, inner] = torch.where(rows[:, k : k + 1], self.obstacle, g[:, p, inner])
            g[:, inner, p] = torch.where(columns[:, k : k + 1], self.obstacle, g[:, inner, p])

        def limits(selected: torch.Tensor) -> torch.Tensor:
            """(m, K + 2): 0, the selected positions in increasing order, then n - 1 (repeated as padding)."""
            pos = torch.where(selected, rivers, n - 1).sort(1).values
            edge = torch.full((m, 1), n - 1, device=dev)
            return torch.cat([torch.zeros(m, 1, dtype=torch.int64, device=dev), pos, edge], 1)

        limits_x, limits_y = limits(columns), limits(rows)
        # the path: which of its N steps cross a column river (a uniform arrangement of the multiset)
        n_columns = columns.sum(1, keepdim=True)
        rank = torch.rand(m, N, generator=gen, device=dev).argsort(1).argsort(1)
        crosses_column = rank < n_columns
        room_x = torch.zeros(m, 1, dtype=torch.int64, device=dev)
        room_y = torch.zeros(m, 1, dtype=torch.int64, device=dev)
        for t in range(N):
            lo_x, hi_x = limits_x.gather(1, room_x).squeeze(1), limits_x.gather(1, room_x + 1).squeeze(1)
            lo_y, hi_y = limits_y.gather(1, room_y).squeeze(1), limits_y.gather(1, room_y + 1).squeeze(1)
            along_y = env.randint(m, lo_y + 1, hi_y)  # an opening in the column river hi_x
            along_x = env.randint(m, lo_x + 1, hi_x)  # an opening in the row river hi_y
            across = crosses_column[:, t]
            x = torch.where(across, hi_x, along_x)
            y = torch.where(across, along_y, hi_y)
            grid.scatter_(1, env.flat(x, y).view(m, 1), C.C_EMPTY)
            room_x += across.view(m, 1)
            room_y += (~across).view(m, 1)
        grid[:, env.flat(n - 2, n - 2)] = C.C_GOAL
        agent = env.flat(1, 1).expand(m).clone()
        return Layouts(grid, agent, torch.zeros(m, dtype=torch.int64, device=dev))
