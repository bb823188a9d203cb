"""Minigrid's LockedRoomEnv (``minigrid/envs/lockedroom.py``): six rooms off a corridor, one locked; its key lies
in another room; the mission names the colours. Layouts and missions from the bank; Minigrid's default step."""

from __future__ import annotations

from torch_rl.envs.minigrid.family import Family


class LockedRoomFamily(Family):
    def __init__(self, size: int = 19, max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 10 * size if max_steps is None else max_steps
        self.mission = None  # per episode
