"""Minigrid's KeyCorridorEnv (``minigrid/envs/keycorridor.py``): rooms off a corridor; the object to pick up
lies behind a locked door whose key is in another room. Layouts and missions from the bank; picking up the
object succeeds (:mod:`.pickup_target`)."""

from __future__ import annotations

from torch_rl.envs.minigrid.families.pickup_target import PickupTargetFamily


class KeyCorridorFamily(PickupTargetFamily):
    minigrid_class = "minigrid.envs.keycorridor:KeyCorridorEnv"
