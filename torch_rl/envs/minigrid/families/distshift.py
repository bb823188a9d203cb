"""Minigrid's DistShiftEnv (``minigrid/envs/distshift.py``): two lava strips (the second at ``strip2_row``)
between the agent, top left, and the goal, top right; one fixed layout per id. Minigrid's default step."""

from __future__ import annotations

from torch_rl.envs.minigrid.family import Family


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
