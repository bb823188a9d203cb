"""Minigrid's EmptyEnv (``minigrid/envs/empty.py``): an empty room, the goal in the bottom-right corner; the
agent at (1, 1) facing right, or (``agent_start_pos=None``) anywhere free, facing anywhere."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Family, Layouts

_UNSET = object()


class EmptyFamily(Family):
    native = True

    def __init__(self, size: int = 8, agent_start_pos=_UNSET, agent_start_dir: int = 0, max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 4 * size**2 if max_steps is None else max_steps
        self.see_through_walls = True
        self.mission = "get to the green goal square"
        self.random_start = agent_start_pos is None
        self.start_pos = (1, 1) if agent_start_pos is _UNSET else agent_start_pos
        self.start_dir = agent_start_dir

    def generate(self, env, m: int) -> Layouts:
        n = self.width
        grid = env.blank_grids(m)
        grid[:, env.flat(n - 2, n - 2)] = C.C_GOAL
        if self.random_start:
            # place_agent(): uniform over empty cells = interior minus the goal
            inner = n - 2
            u = env.randint(m, 0, inner * inner - 1)
            agent = env.flat(1 + u % inner, 1 + u // inner)
            d = env.randint(m, 0, 4)
        else:
            agent = env.flat(*self.start_pos).expand(m).clone()
            d = torch.full((m,), self.start_dir, dtype=torch.int64, device=env.device)
        return Layouts(grid, agent, d)
