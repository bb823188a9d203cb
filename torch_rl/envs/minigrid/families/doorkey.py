"""Minigrid's DoorKeyEnv (``minigrid/envs/doorkey.py``): a wall column with a locked yellow door splits the room;
the yellow key and the agent are left of it, the goal in the bottom-right corner."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Family, Layouts


class DoorKeyFamily(Family):
    native = True

    def __init__(self, size: int = 8, max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 10 * size**2 if max_steps is None else max_steps
        self.mission = "use the key to open the door and then get to the goal"

    def generate(self, env, m: int) -> Layouts:
        n = self.width
        grid = env.blank_grids(m)
        grid[:, env.flat(n - 2, n - 2)] = C.C_GOAL
        split = env.randint(m, 2, n - 2)  # wall column
        # agent: uniform over empty cells with x < split -> x in [1, split-1], y in [1, n-2]
        w = split - 1
        cnt = w * (n - 2)
        ua = env.randint(m, 0, cnt)
        d = env.randint(m, 0, 4)
        door_y = env.randint(m, 1, n - 2)  # _rand_int(1, height - 2)
        # key: uniform over the same cells minus the agent's
        uk = env.randint(m, 0, cnt - 1)
        uk = uk + (uk >= ua).long()
        agent = env.flat(1 + ua % w, 1 + ua // w)
        key = env.flat(1 + uk % w, 1 + uk // w)
        door = env.flat(split, door_y)
        column = env.flat(split.unsqueeze(1), torch.arange(n, device=env.device))  # (m, n): the wall column
        grid.scatter_(1, column, C.C_WALL)
        grid.scatter_(1, door.view(m, 1), C.door_code(C.COLOR_IDX["yellow"], C.DOOR_LOCKED))
        grid.scatter_(1, key.view(m, 1), C.C_KEY0 + C.COLOR_IDX["yellow"])
        return Layouts(grid, agent, d)
