"""The default observation preprocessing: a batch of observations to float tensors on the device."""

from typing import Any

import numpy as np
import torch

from torch_rl.batching import stack_obs
from torch_rl.dictlist import DictList


def default_preprocess_obss(obss: Any, device: str | torch.device | None = None) -> torch.Tensor | DictList:
    """Turns a batch of observations into a float tensor (or a DictList of them for dict observations).

    ``obss`` is either a list of N per-env observations (the documented contract of ``preprocess_obss``) or,
    because this function declares ``accepts_stacked_obs``, the stacked batch the envs return (an array of
    shape (N, ...) or a dict of such arrays and lists). Dict entries that are not numeric (e.g. mission
    strings) are kept out; a model that needs them (e.g. a mission to tokenise) comes with its own
    ``preprocess_obss``.
    """
    if isinstance(obss, (list, tuple)):
        if len(obss) == 0:
            raise ValueError("preprocess_obss got an empty list of observations")
        obss = stack_obs(list(obss))
    if isinstance(obss, dict):
        return _dict_to_tensors(obss, device)
    return _to_tensor(obss, device)


# It takes the stacked batch as well as a list: the algorithms then skip splitting the batch into N observations.
default_preprocess_obss.accepts_stacked_obs = True


def _dict_to_tensors(obss, device):
    return DictList({key: _to_tensor(value, device) for key, value in obss.items() if not _is_strings(value)})


def _is_strings(value):
    return isinstance(value, (list, tuple, np.ndarray)) and len(value) > 0 and isinstance(value[0], str)


def _to_tensor(value, device):
    if isinstance(value, dict):
        return _dict_to_tensors(value, device)
    if isinstance(value, torch.Tensor):
        return value.to(device=device, dtype=torch.float32)
    array = np.asarray(value)
    if any(stride < 0 for stride in array.strides):  # e.g. np.flip(image): torch cannot view it
        array = array.copy()
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"default_preprocess_obss cannot turn observations of dtype {array.dtype} into a tensor; "
            "pass your own preprocess_obss to the algorithm"
        )
    return torch.as_tensor(array, dtype=torch.float32, device=device)
