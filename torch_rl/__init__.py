"""torch_rl: small, fast actor-critic reinforcement learning (A2C, PPO) in PyTorch."""

from torch_rl import utils  # torch-ac's module path: torch_rl.utils.DictList, torch_rl.utils.penv.ParallelEnv
from torch_rl.algos import A2CAlgo, BaseAlgo, PPOAlgo
from torch_rl.dictlist import DictList
from torch_rl.model import ACModel, RecurrentACModel
from torch_rl.patch_conv import PatchConv2d
from torch_rl.preprocess import default_preprocess_obss
from torch_rl.vec_env import EnvWorkerError, ParallelEnv

__all__ = [
    "A2CAlgo",
    "PPOAlgo",
    "BaseAlgo",
    "ACModel",
    "RecurrentACModel",
    "DictList",
    "PatchConv2d",
    "default_preprocess_obss",
    "ParallelEnv",
    "EnvWorkerError",
    "utils",
]
__version__ = "0.1.0"
