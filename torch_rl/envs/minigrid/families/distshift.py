"""Minigrid's DistShiftEnv (``minigrid/envs/distshift.py``): two lava strips (the second at ``strip2_row``)
between the agent, at (1, 1) facing right, and the goal in the top-right corner: one fixed layout per id, made
natively. Minigrid's default step."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Family, Layouts


class DistShiftFamily(Family):
    def __init__(
        self,
        width: int = 9,
        height: int = 7,
        agent_start_pos=(1, 1),
        agent_start_dir: int = 0,
        strip2_row: int = 2,
        max_steps: int | None = None,
    ):
        self.width, self.height = width, height
        self.max_steps = 4 * width * height if max_steps is None else max_steps
        self.see_through_walls = True
        self.mission = "get to the green goal square"
        self.start_pos, self.start_dir, self.strip2_row = agent_start_pos, agent_start_dir, strip2_row
        self.native = agent_start_pos is not None  # a random start: layouts from the bank

    def generate(self, env, m: int) -> Layouts:
        grid = env.blank_grids(m)
        grid[:, env.flat(self.width - 2, 1)] = C.C_GOAL
        x = torch.arange(3, self.width - 3, device=env.device)
        grid[:, torch.cat([env.flat(x, 1), env.flat(x, self.strip2_row)])] = C.C_LAVA  # the two lava strips
        agent = env.flat(*self.start_pos).expand(m).clone()
        return Layouts(grid, agent, torch.full((m,), self.start_dir, dtype=torch.int64, device=env.device))
