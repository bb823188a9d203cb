"""Minigrid's LavaGapEnv (``minigrid/envs/lavagap.py``): a lava column with one gap between the agent, top left,
and the goal, bottom right. Layouts from the bank; Minigrid's default step."""

from __future__ import annotations

from torch_rl.envs.minigrid.family import Family


class LavaGapFamily(Family):
    def __init__(self, size: int, obstacle_type=None, max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 4 * size**2 if max_steps is None else max_steps
        lava = obstacle_type is None or getattr(obstacle_type, "__name__", "Lava") == "Lava"
        self.mission = (
            "avoid the lava and get to the green goal square"
            if lava
            else "find the opening and get to the green goal square"
        )
