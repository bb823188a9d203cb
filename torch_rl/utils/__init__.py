"""The module paths of torch-ac and the original torch-rl: ``from torch_rl.utils import DictList, ParallelEnv``."""

from torch_rl.dictlist import DictList
from torch_rl.utils.penv import ParallelEnv

__all__ = ["DictList", "ParallelEnv"]
