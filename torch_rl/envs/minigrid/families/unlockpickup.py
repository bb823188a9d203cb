"""Minigrid's UnlockPickupEnv and BlockedUnlockPickupEnv (``minigrid/envs/unlockpickup.py``,
``blockedunlockpickup.py``): two rooms, a locked door (blocked by a ball in the second), the key in the agent's
room and a box to pick up in the other. Layouts and missions from the bank; picking up the box succeeds
(:mod:`.pickup_target`)."""

from __future__ import annotations

from torch_rl.envs.minigrid.families.pickup_target import PickupTargetFamily


class UnlockPickupFamily(PickupTargetFamily):
    minigrid_class = "minigrid.envs.unlockpickup:UnlockPickupEnv"


class BlockedUnlockPickupFamily(PickupTargetFamily):
    minigrid_class = "minigrid.envs.blockedunlockpickup:BlockedUnlockPickupEnv"
