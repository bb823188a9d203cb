"""Minigrid's ObstructedMaze envs, v0 (``minigrid/envs/obstructedmaze.py``) and v1 (``obstructedmaze_v1.py``):
rooms joined by doors, locked ones with their keys hidden in boxes, doors blocked by balls, a blue ball to pick
up. Layouts (with what each box holds) and missions from the bank; picking up the ball succeeds
(:mod:`.pickup_target`). v0 and v1 differ only in their generators, so one family serves both."""

from __future__ import annotations

from torch_rl.envs.minigrid.families.pickup_target import PickupTargetFamily


class ObstructedMazeFamily(PickupTargetFamily):
    box_contents = True
    minigrid_class = "minigrid.envs.obstructedmaze:ObstructedMaze_Full"


class ObstructedMaze1DlhbFamily(ObstructedMazeFamily):
    minigrid_class = "minigrid.envs.obstructedmaze:ObstructedMaze_1Dlhb"


class ObstructedMazeV1Family(ObstructedMazeFamily):
    minigrid_class = "minigrid.envs.obstructedmaze_v1:ObstructedMaze_Full_V1"
