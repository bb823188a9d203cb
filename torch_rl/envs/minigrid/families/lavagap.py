"""Minigrid's LavaGapEnv (``minigrid/envs/lavagap.py``): a lava column with one gap between the agent, at (1, 1)
facing right, and the goal in the bottom-right corner; the column and the gap at uniform places. Native tensor
generator; Minigrid's default step."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Family, Layouts


class LavaGapFamily(Family):
    def __init__(self, size: int, obstacle_type=None, max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 4 * size**2 if max_steps is None else max_steps
        lava = obstacle_type is None or getattr(obstacle_type, "__name__", "Lava") == "Lava"
        self.obstacle = C.C_LAVA if lava else C.C_WALL
        opening = "avoid the lava" if lava else "find the opening"
        self.mission = f"{opening} and get to the green goal square"
        self.native = True

    def generate(self, env, m: int) -> Layouts:
        n = self.width
        grid = env.blank_grids(m)
        grid[:, env.flat(n - 2, n - 2)] = C.C_GOAL
        gap_x = env.randint(m, 2, n - 2)
        gap_y = env.randint(m, 1, n - 1)
        column = env.flat(gap_x.unsqueeze(1), torch.arange(1, n - 1, device=env.device))  # (m, n - 2)
        grid.scatter_(1, column, self.obstacle)
        grid.scatter_(1, env.flat(gap_x, gap_y).view(m, 1), C.C_EMPTY)
        agent = env.flat(1, 1).expand(m).clone()
        return Layouts(grid, agent, torch.zeros(m, dtype=torch.int64, device=env.device))
