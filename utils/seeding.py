import random

import numpy as np
import torch


def seed(seed):
    """Seeds Python, NumPy and torch, so that a run is repeatable. NumPy takes seeds below 2**32: a seed made of
    --seed plus an offset (the update, the rank) wraps around."""
    seed %= 2**32
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
