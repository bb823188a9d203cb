"""Minigrid's CrossingEnv (``minigrid/envs/crossing.py``): rivers of lava (LavaCrossing) or walls
(SimpleCrossing) with one opening on the path to the goal in the bottom-right corner. Layouts from the bank;
Minigrid's default step (lava ends the episode with reward 0)."""

from __future__ import annotations

from torch_rl.envs.minigrid.family import Family


class CrossingFamily(Family):
    def __init__(self, size: int = 9, num_crossings: int = 1, obstacle_type="lava", max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 4 * size**2 if max_steps is None else max_steps
        kind = obstacle_type if isinstance(obstacle_type, str) else obstacle_type.__name__
        self.mission = {
            "lava": "avoid the lava and get to the green goal square",
            "wall": "find the opening and get to the green goal square",
        }.get(kind.lower(), "get to the green goal square")
