"""Minigrid as batched torch tensors: one engine (:mod:`.engine`), one small file per family (``families/``),
every supported id in :mod:`.registry`, layouts from Minigrid's own ``reset`` in :mod:`.bank`."""

from torch_rl.envs.minigrid.engine import BatchedMiniGridEnv
from torch_rl.envs.minigrid.registry import SUPPORTED_ENV_IDS

__all__ = ["BatchedMiniGridEnv", "SUPPORTED_ENV_IDS"]
