import random

import numpy as np
import torch


def seed(seed):
    """Seeds Python, NumPy and torch, so that a run is repeatable."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
