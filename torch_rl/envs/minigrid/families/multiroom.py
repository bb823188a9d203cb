"""Minigrid's MultiRoomEnv (``minigrid/envs/multiroom.py``): a chain of rooms joined by closed doors of random
colours, made by rejection sampling; the goal in the last room. Layouts from the bank; Minigrid's default step."""

from __future__ import annotations

from torch_rl.envs.minigrid.family import Family


class MultiRoomFamily(Family):
    def __init__(
        self,
        minNumRooms: int,  # noqa: N803  (Minigrid's keyword names)
        maxNumRooms: int,  # noqa: N803
        maxRoomSize: int = 10,  # noqa: N803
        width: int = 25,
        height: int = 25,
        max_steps: int | None = None,
    ):
        self.width, self.height = width, height
        self.max_steps = maxNumRooms * 20 if max_steps is None else max_steps
        self.mission = "traverse the rooms to get to the goal"
