"""Every Minigrid id the batched engine supports, and the family that runs it.

A family's module in ``families/`` holds one :class:`~torch_rl.envs.minigrid.family.Family` subclass; it is built
with the keyword arguments Minigrid registers for the id (``gymnasium.registry[id].kwargs``), so sizes and
limits follow Minigrid's own registration.
"""

from __future__ import annotations

import importlib

from torch_rl.envs.minigrid.family import Family

# family name -> "module:Class" under torch_rl.envs.minigrid.families
FAMILIES: dict[str, str] = {
    "Empty": "empty:EmptyFamily",
    "DoorKey": "doorkey:DoorKeyFamily",
    "FourRooms": "fourrooms:FourRoomsFamily",
    "MultiRoom": "multiroom:MultiRoomFamily",
    "Crossing": "crossing:CrossingFamily",
    "LavaGap": "lavagap:LavaGapFamily",
    "DistShift": "distshift:DistShiftFamily",
    "LockedRoom": "lockedroom:LockedRoomFamily",
    "Memory": "memory:MemoryFamily",
    "DynamicObstacles": "dynamicobstacles:DynamicObstaclesFamily",
    "KeyCorridor": "keycorridor:KeyCorridorFamily",
    "Unlock": "unlock:UnlockFamily",
    "UnlockPickup": "unlockpickup:UnlockPickupFamily",
    "BlockedUnlockPickup": "unlockpickup:BlockedUnlockPickupFamily",
    "ObstructedMaze1D": "obstructedmaze:ObstructedMaze1DlhbFamily",
    "ObstructedMaze": "obstructedmaze:ObstructedMazeFamily",
    "ObstructedMazeV1": "obstructedmaze:ObstructedMazeV1Family",
    "Fetch": "fetch:FetchFamily",
    "GoToObject": "goto:GoToObjectFamily",
    "GoToDoor": "goto:GoToDoorFamily",
    "PutNear": "putnear:PutNearFamily",
    "RedBlueDoors": "redbluedoors:RedBlueDoorsFamily",
    "Playground": "playground:PlaygroundFamily",
    "BabyAI": "babyai:BabyAIFamily",
    "WFC": "wfc:WFCFamily",
}

# id -> family name
ENV_FAMILY: dict[str, str] = {
    "MiniGrid-Empty-5x5-v0": "Empty",
    "MiniGrid-Empty-Random-5x5-v0": "Empty",
    "MiniGrid-Empty-6x6-v0": "Empty",
    "MiniGrid-Empty-Random-6x6-v0": "Empty",
    "MiniGrid-Empty-8x8-v0": "Empty",
    "MiniGrid-Empty-16x16-v0": "Empty",
    "MiniGrid-DoorKey-5x5-v0": "DoorKey",
    "MiniGrid-DoorKey-6x6-v0": "DoorKey",
    "MiniGrid-DoorKey-8x8-v0": "DoorKey",
    "MiniGrid-DoorKey-16x16-v0": "DoorKey",
    "MiniGrid-FourRooms-v0": "FourRooms",
    "MiniGrid-MultiRoom-N2-S4-v0": "MultiRoom",
    "MiniGrid-MultiRoom-N4-S5-v0": "MultiRoom",
    "MiniGrid-MultiRoom-N4-S5-v1": "MultiRoom",
    "MiniGrid-MultiRoom-N6-v0": "MultiRoom",
    "MiniGrid-SimpleCrossingS9N1-v0": "Crossing",
    "MiniGrid-SimpleCrossingS9N2-v0": "Crossing",
    "MiniGrid-SimpleCrossingS9N3-v0": "Crossing",
    "MiniGrid-SimpleCrossingS11N5-v0": "Crossing",
    "MiniGrid-LavaCrossingS9N1-v0": "Crossing",
    "MiniGrid-LavaCrossingS9N2-v0": "Crossing",
    "MiniGrid-LavaCrossingS9N3-v0": "Crossing",
    "MiniGrid-LavaCrossingS11N5-v0": "Crossing",
    "MiniGrid-LavaGapS5-v0": "LavaGap",
    "MiniGrid-LavaGapS6-v0": "LavaGap",
    "MiniGrid-LavaGapS7-v0": "LavaGap",
    "MiniGrid-DistShift1-v0": "DistShift",
    "MiniGrid-DistShift2-v0": "DistShift",
    "MiniGrid-LockedRoom-v0": "LockedRoom",
    "MiniGrid-MemoryS7-v0": "Memory",
    "MiniGrid-MemoryS9-v0": "Memory",
    "MiniGrid-MemoryS11-v0": "Memory",
    "MiniGrid-MemoryS13-v0": "Memory",
    "MiniGrid-MemoryS13Random-v0": "Memory",
    "MiniGrid-MemoryS17Random-v0": "Memory",
    "MiniGrid-Dynamic-Obstacles-5x5-v0": "DynamicObstacles",
    "MiniGrid-Dynamic-Obstacles-Random-5x5-v0": "DynamicObstacles",
    "MiniGrid-Dynamic-Obstacles-6x6-v0": "DynamicObstacles",
    "MiniGrid-Dynamic-Obstacles-Random-6x6-v0": "DynamicObstacles",
    "MiniGrid-Dynamic-Obstacles-8x8-v0": "DynamicObstacles",
    "MiniGrid-Dynamic-Obstacles-16x16-v0": "DynamicObstacles",
    "MiniGrid-BlockedUnlockPickup-v0": "BlockedUnlockPickup",
    "MiniGrid-Fetch-5x5-N2-v0": "Fetch",
    "MiniGrid-Fetch-6x6-N2-v0": "Fetch",
    "MiniGrid-Fetch-8x8-N3-v0": "Fetch",
    "MiniGrid-GoToDoor-5x5-v0": "GoToDoor",
    "MiniGrid-GoToDoor-6x6-v0": "GoToDoor",
    "MiniGrid-GoToDoor-8x8-v0": "GoToDoor",
    "MiniGrid-GoToObject-6x6-N2-v0": "GoToObject",
    "MiniGrid-GoToObject-8x8-N2-v0": "GoToObject",
    "MiniGrid-KeyCorridorS3R1-v0": "KeyCorridor",
    "MiniGrid-KeyCorridorS3R2-v0": "KeyCorridor",
    "MiniGrid-KeyCorridorS3R3-v0": "KeyCorridor",
    "MiniGrid-KeyCorridorS4R3-v0": "KeyCorridor",
    "MiniGrid-KeyCorridorS5R3-v0": "KeyCorridor",
    "MiniGrid-KeyCorridorS6R3-v0": "KeyCorridor",
    "MiniGrid-ObstructedMaze-1Dl-v0": "ObstructedMaze1D",
    "MiniGrid-ObstructedMaze-1Dlh-v0": "ObstructedMaze1D",
    "MiniGrid-ObstructedMaze-1Dlhb-v0": "ObstructedMaze1D",
    "MiniGrid-ObstructedMaze-2Dl-v0": "ObstructedMaze",
    "MiniGrid-ObstructedMaze-2Dlh-v0": "ObstructedMaze",
    "MiniGrid-ObstructedMaze-2Dlhb-v0": "ObstructedMaze",
    "MiniGrid-ObstructedMaze-1Q-v0": "ObstructedMaze",
    "MiniGrid-ObstructedMaze-2Q-v0": "ObstructedMaze",
    "MiniGrid-ObstructedMaze-Full-v0": "ObstructedMaze",
    "MiniGrid-ObstructedMaze-2Dlhb-v1": "ObstructedMazeV1",
    "MiniGrid-ObstructedMaze-1Q-v1": "ObstructedMazeV1",
    "MiniGrid-ObstructedMaze-2Q-v1": "ObstructedMazeV1",
    "MiniGrid-ObstructedMaze-Full-v1": "ObstructedMazeV1",
    "MiniGrid-Playground-v0": "Playground",
    "MiniGrid-PutNear-6x6-N2-v0": "PutNear",
    "MiniGrid-PutNear-8x8-N3-v0": "PutNear",
    "MiniGrid-RedBlueDoors-6x6-v0": "RedBlueDoors",
    "MiniGrid-RedBlueDoors-8x8-v0": "RedBlueDoors",
    "MiniGrid-Unlock-v0": "Unlock",
    "MiniGrid-UnlockPickup-v0": "UnlockPickup",
    "MiniGrid-WFC-MazeSimple-v0": "WFC",
    "MiniGrid-WFC-DungeonMazeScaled-v0": "WFC",
    "MiniGrid-WFC-RoomsFabric-v0": "WFC",
    "MiniGrid-WFC-ObstaclesBlackdots-v0": "WFC",
    "MiniGrid-WFC-ObstaclesAngular-v0": "WFC",
    "MiniGrid-WFC-ObstaclesHogs3-v0": "WFC",
}
# BabyAI: every level is one rule (RoomGridLevel.step with its verifier); Minigrid's own reset makes each
# level's layouts and instructions (families/babyai.py)
BABYAI_IDS: tuple[str, ...] = (
    "BabyAI-GoToRedBallGrey-v0",
    "BabyAI-GoToRedBall-v0",
    "BabyAI-GoToRedBallNoDists-v0",
    "BabyAI-GoToObj-v0",
    "BabyAI-GoToObjS4-v0",
    "BabyAI-GoToObjS6-v1",
    "BabyAI-GoToLocal-v0",
    "BabyAI-GoToLocalS5N2-v0",
    "BabyAI-GoToLocalS6N2-v0",
    "BabyAI-GoToLocalS6N3-v0",
    "BabyAI-GoToLocalS6N4-v0",
    "BabyAI-GoToLocalS7N4-v0",
    "BabyAI-GoToLocalS7N5-v0",
    "BabyAI-GoToLocalS8N2-v0",
    "BabyAI-GoToLocalS8N3-v0",
    "BabyAI-GoToLocalS8N4-v0",
    "BabyAI-GoToLocalS8N5-v0",
    "BabyAI-GoToLocalS8N6-v0",
    "BabyAI-GoToLocalS8N7-v0",
    "BabyAI-GoTo-v0",
    "BabyAI-GoToOpen-v0",
    "BabyAI-GoToObjMaze-v0",
    "BabyAI-GoToObjMazeOpen-v0",
    "BabyAI-GoToObjMazeS4R2-v0",
    "BabyAI-GoToObjMazeS4-v0",
    "BabyAI-GoToObjMazeS5-v0",
    "BabyAI-GoToObjMazeS6-v0",
    "BabyAI-GoToObjMazeS7-v0",
    "BabyAI-GoToImpUnlock-v0",
    "BabyAI-GoToSeq-v0",
    "BabyAI-GoToSeqS5R2-v0",
    "BabyAI-GoToRedBlueBall-v0",
    "BabyAI-GoToDoor-v0",
    "BabyAI-GoToObjDoor-v0",
    "BabyAI-Open-v0",
    "BabyAI-OpenRedDoor-v0",
    "BabyAI-OpenDoor-v0",
    "BabyAI-OpenDoorDebug-v0",
    "BabyAI-OpenDoorColor-v0",
    "BabyAI-OpenDoorLoc-v0",
    "BabyAI-OpenTwoDoors-v0",
    "BabyAI-OpenRedBlueDoors-v0",
    "BabyAI-OpenRedBlueDoorsDebug-v0",
    "BabyAI-OpenDoorsOrderN2-v0",
    "BabyAI-OpenDoorsOrderN4-v0",
    "BabyAI-OpenDoorsOrderN2Debug-v0",
    "BabyAI-OpenDoorsOrderN4Debug-v0",
    "BabyAI-Pickup-v0",
    "BabyAI-UnblockPickup-v0",
    "BabyAI-PickupLoc-v0",
    "BabyAI-PickupDist-v0",
    "BabyAI-PickupDistDebug-v0",
    "BabyAI-PickupAbove-v0",
    "BabyAI-PutNextLocal-v0",
    "BabyAI-PutNextLocalS5N3-v0",
    "BabyAI-PutNextLocalS6N4-v0",
    "BabyAI-PutNextS4N1-v0",
    "BabyAI-PutNextS5N2-v0",
    "BabyAI-PutNextS5N1-v0",
    "BabyAI-PutNextS6N3-v0",
    "BabyAI-PutNextS7N4-v0",
    "BabyAI-PutNextS5N2Carrying-v0",
    "BabyAI-PutNextS6N3Carrying-v0",
    "BabyAI-PutNextS7N4Carrying-v0",
    "BabyAI-Unlock-v0",
    "BabyAI-UnlockLocal-v0",
    "BabyAI-UnlockLocalDist-v0",
    "BabyAI-KeyInBox-v0",
    "BabyAI-UnlockPickup-v0",
    "BabyAI-UnlockPickupDist-v0",
    "BabyAI-BlockedUnlockPickup-v0",
    "BabyAI-UnlockToUnlock-v0",
    "BabyAI-ActionObjDoor-v0",
    "BabyAI-FindObjS5-v0",
    "BabyAI-FindObjS6-v0",
    "BabyAI-FindObjS7-v0",
    "BabyAI-KeyCorridor-v0",
    "BabyAI-KeyCorridorS3R1-v0",
    "BabyAI-KeyCorridorS3R2-v0",
    "BabyAI-KeyCorridorS3R3-v0",
    "BabyAI-KeyCorridorS4R3-v0",
    "BabyAI-KeyCorridorS5R3-v0",
    "BabyAI-KeyCorridorS6R3-v0",
    "BabyAI-OneRoomS8-v0",
    "BabyAI-OneRoomS12-v0",
    "BabyAI-OneRoomS16-v0",
    "BabyAI-OneRoomS20-v0",
    "BabyAI-MoveTwoAcrossS5N2-v0",
    "BabyAI-MoveTwoAcrossS8N9-v0",
    "BabyAI-Synth-v0",
    "BabyAI-SynthS5R2-v0",
    "BabyAI-SynthLoc-v0",
    "BabyAI-SynthSeq-v0",
    "BabyAI-MiniBossLevel-v0",
    "BabyAI-BossLevel-v0",
    "BabyAI-BossLevelNoUnlock-v0",
)
ENV_FAMILY.update({env_id: "BabyAI" for env_id in BABYAI_IDS})
MINIGRID_IDS: tuple[str, ...] = tuple(i for i in ENV_FAMILY if i.startswith("MiniGrid-"))
SUPPORTED_ENV_IDS: tuple[str, ...] = tuple(ENV_FAMILY)


def family_names() -> list[str]:
    return list(FAMILIES)


def make_family(env_id: str) -> Family:
    """The family object for ``env_id``; ValueError (naming the supported ids) for any other id."""
    if env_id not in ENV_FAMILY:
        raise ValueError(
            f"Unsupported env id {env_id!r}; BatchedMiniGridEnv supports the families {', '.join(FAMILIES)}: "
            + ", ".join(SUPPORTED_ENV_IDS)
        )
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid-* and BabyAI-* ids)

    from torch_rl.envs.minigrid.wfc import use_shipped_patterns

    use_shipped_patterns()  # the WFC ids read their pattern images from torch_rl's copy
    module, cls = FAMILIES[ENV_FAMILY[env_id]].split(":")
    family_cls = getattr(importlib.import_module(f"torch_rl.envs.minigrid.families.{module}"), cls)
    spec = gym.registry[env_id]
    return family_cls.from_registration(spec.entry_point, dict(spec.kwargs))
