"""Minigrid's FourRoomsEnv (``minigrid/envs/fourrooms.py``): a 19x19 grid cut into four rooms by a wall column and
a wall row, each of the four wall segments with one gap at a uniform place; the agent (uniform direction) and
then the goal on uniform empty cells. Native tensor generator (Minigrid's distribution, tested statistically);
Minigrid's default step."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Family, Layouts


class FourRoomsFamily(Family):
    def __init__(self, agent_pos=None, goal_pos=None, max_steps: int = 100):
        self.width = self.height = 19
        self.max_steps = max_steps
        self.mission = "reach the goal"
        self.native = agent_pos is None and goal_pos is None  # fixed positions: layouts from the bank

    def generate(self, env, m: int) -> Layouts:
        n = self.width
        half = n // 2
        grid = env.blank_grids(m)
        k = torch.arange(n, device=env.device)
        grid[:, torch.cat([env.flat(half, k), env.flat(k, half)])] = C.C_WALL  # the wall column and the wall row
        # one gap per wall segment, drawn in _gen_grid's order
        gaps = [
            env.flat(half, env.randint(m, 1, half)),
            env.flat(env.randint(m, 1, half), half),
            env.flat(env.randint(m, half + 1, n - 1), half),
            env.flat(half, env.randint(m, half + 1, n - 1)),
        ]
        for gap in gaps:
            grid.scatter_(1, gap.view(m, 1), C.C_EMPTY)
        empty = grid == C.C_EMPTY
        agent = env.choose_cells(empty)
        d = env.randint(m, 0, 4)
        empty.scatter_(1, agent.view(m, 1), False)
        grid.scatter_(1, env.choose_cells(empty).view(m, 1), C.C_GOAL)
        return Layouts(grid, agent, d)
