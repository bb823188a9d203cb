"""Environments for torch_rl: MiniGrid as batched tensors, a faster exact MiniGrid observation path, and a
minimal memory task (registered as ``torch_rl/CueCorridor-v0``, and ``torch_rl/CueCorridorSides-v0`` where the
choice is a side that depends on both the cue and the junction's layout).

Importing it also makes Minigrid's ``MiniGrid-WFC-*`` ids work: their pattern images ship with torch_rl
(:mod:`torch_rl.envs.minigrid.wfc`)."""

import gymnasium as gym

from torch_rl.envs.batched_minigrid import SUPPORTED_ENV_IDS, BatchedMiniGridEnv
from torch_rl.envs.cue_corridor import CueCorridorEnv
from torch_rl.envs.fast_obs import FastMiniGridObs, make_fast
from torch_rl.envs.minigrid.wfc import use_shipped_patterns

__all__ = ["BatchedMiniGridEnv", "SUPPORTED_ENV_IDS", "CueCorridorEnv", "FastMiniGridObs", "make_fast"]

use_shipped_patterns()
if "torch_rl/CueCorridor-v0" not in gym.registry:
    gym.register("torch_rl/CueCorridor-v0", entry_point="torch_rl.envs.cue_corridor:CueCorridorEnv")
if "torch_rl/CueCorridorSides-v0" not in gym.registry:
    gym.register(
        "torch_rl/CueCorridorSides-v0",
        entry_point="torch_rl.envs.cue_corridor:CueCorridorEnv",
        kwargs={"swap_sides": True},
    )
