"""Kept for existing imports: the batched MiniGrid engine lives in :mod:`torch_rl.envs.minigrid`."""

from torch_rl.envs.minigrid.engine import BatchedMiniGridEnv
from torch_rl.envs.minigrid.registry import SUPPORTED_ENV_IDS

__all__ = ["BatchedMiniGridEnv", "SUPPORTED_ENV_IDS"]
