"""Environments for torch_rl."""

from torch_rl.envs.batched_minigrid import SUPPORTED_ENV_IDS, BatchedMiniGridEnv

__all__ = ["BatchedMiniGridEnv", "SUPPORTED_ENV_IDS"]
