"""Environments for torch_rl: MiniGrid as batched tensors, and a faster exact MiniGrid observation path."""

from torch_rl.envs.batched_minigrid import SUPPORTED_ENV_IDS, BatchedMiniGridEnv
from torch_rl.envs.fast_obs import FastMiniGridObs, make_fast

__all__ = ["BatchedMiniGridEnv", "SUPPORTED_ENV_IDS", "FastMiniGridObs", "make_fast"]
