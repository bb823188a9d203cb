from torch_rl.algos.a2c import A2CAlgo
from torch_rl.algos.base import BaseAlgo
from torch_rl.algos.ppo import PPOAlgo

__all__ = ["A2CAlgo", "BaseAlgo", "PPOAlgo"]
