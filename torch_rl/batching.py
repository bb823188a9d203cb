"""Helpers that turn per-env observations into batches and back, whatever their structure.

A batch is an array/tensor with the env index first, a list (e.g. of mission strings), or a dict of batches.
"""

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from torch_rl.dictlist import DictList


def stack_obs(observations: Sequence[Any]) -> Any:
    """Stacks a list of per-env observations (arrays, numbers, strings or dicts of them) into one batch.

    Observations of different structures (keys, types or shapes) raise a ValueError that says which differ.
    """
    if len(observations) == 0:
        raise ValueError("cannot stack an empty list of observations")
    return _stack(observations, "")


def _stack(observations, path):
    first = observations[0]
    kind = _kind(first)
    same_type = all(type(obs) is type(first) for obs in observations)  # fast path of the per-step hot loop
    for i, obs in enumerate(observations if not same_type else ()):
        if _kind(obs) != kind:
            raise ValueError(
                f"observations{path} differ in type: observation 0 is {_describe(first)}, "
                f"observation {i} is {_describe(obs)}"
            )
    if kind == "dict":
        keys = first.keys()
        for obs in observations:
            if obs.keys() != keys:
                raise ValueError(f"observations{path} have different keys: {sorted(keys)} vs {_keys_of(obs)}")
        return {key: _stack([obs[key] for obs in observations], f"{path}[{key!r}]") for key in keys}
    if kind == "str":
        return list(observations)
    if kind == "tensor":
        try:
            return torch.stack(observations)
        except RuntimeError:
            _raise_shape_error([tuple(obs.shape) for obs in observations], path)
            raise
    if same_type and isinstance(first, np.ndarray):
        arrays = observations
    else:
        arrays = []
        for i, obs in enumerate(observations):
            try:
                arrays.append(np.asarray(obs))
            except ValueError as error:  # e.g. a ragged nested list
                raise ValueError(f"observation {i}{path} is not an array: {error}") from None
    try:
        return np.stack(arrays)
    except ValueError:
        _raise_shape_error([array.shape for array in arrays], path)
        raise


def _kind(obs):
    if isinstance(obs, dict):
        return "dict"
    if isinstance(obs, str):
        return "str"
    if isinstance(obs, torch.Tensor):
        return "tensor"
    return "array"


def _describe(obs):
    kind = _kind(obs)
    if kind == "dict":
        return f"a dict with keys {sorted(obs.keys())}"
    if kind == "str":
        return "a string"
    if kind == "tensor":
        return "a torch tensor"
    return f"of type {type(obs).__name__}"


def _raise_shape_error(shapes, path):
    for i, shape in enumerate(shapes):
        if shape != shapes[0]:
            raise ValueError(
                f"observations{path} have different shapes: {shapes[0]} (observation 0) vs {shape} (observation {i})"
            ) from None


def concat_obs(batches: Sequence[Any]) -> Any:
    """Concatenates batches along the env axis (e.g. the chunks of several worker processes)."""
    first = batches[0]
    if isinstance(first, dict):
        return {key: concat_obs([batch[key] for batch in batches]) for key in first}
    if isinstance(first, list):
        return [item for batch in batches for item in batch]
    if isinstance(first, torch.Tensor):
        return torch.cat(batches)
    return np.concatenate(batches)


def index_obs(batch: Any, index: int | Sequence[int] | np.ndarray) -> Any:
    """Rows ``index`` (an int, or a sequence/array of ints) of a batch."""
    if isinstance(batch, dict):
        return {key: index_obs(value, index) for key, value in batch.items()}
    if isinstance(batch, list):
        if isinstance(index, (int, np.integer)):
            return batch[index]
        return [batch[int(i)] for i in index]
    if isinstance(batch, torch.Tensor) and not isinstance(index, (int, np.integer)):
        index = torch.as_tensor(np.asarray(index), device=batch.device, dtype=torch.long)
    return batch[index]


def batch_size(batch: Any) -> int:
    """The number of observations in a batch (the length of its first array, tensor or list)."""
    while isinstance(batch, dict):
        if not batch:
            raise ValueError("cannot tell the size of an empty dict of observations")
        batch = next(iter(batch.values()))
    return len(batch)


def unstack_obs(batch: Any) -> list[Any]:
    """The list of per-env observations of a batch: the inverse of ``stack_obs`` (array rows are views)."""
    return [index_obs(batch, i) for i in range(batch_size(batch))]


def stack_steps(steps: Sequence[Any], env_major: bool = False) -> Any:
    """Stacks a list of T preprocessed batches (tensors or DictLists of shape (N, ...)) to shape (T, N, ...), or
    with ``env_major`` to (N, T, ...) in one copy (``flatten_steps(..., transpose=False)`` then makes the rows of
    ``exps`` without another).

    Trailing dimensions that differ between steps (e.g. token sequences padded per step) are zero-padded.
    """
    first = steps[0]
    if isinstance(first, dict):
        return DictList({key: stack_steps([step[key] for step in steps], env_major) for key in first})
    if not isinstance(first, torch.Tensor):
        return [item for step in steps for item in step]  # e.g. strings: no step axis, just kept
    shapes = {tuple(step.shape) for step in steps}
    if len(shapes) > 1:
        size = [max(dims) for dims in zip(*shapes, strict=True)]
        padded = first.new_zeros((len(steps), *size))
        for t, step in enumerate(steps):
            padded[(t, *[slice(0, d) for d in step.shape])] = step
        return padded.transpose(0, 1) if env_major else padded
    return torch.stack(steps, dim=1 if env_major else 0)


def flatten_steps(batch: Any, transpose: bool = True) -> Any:
    """(T, N, ...) -> (N*T, ...), env-major, so that consecutive rows are consecutive steps of one env."""
    if isinstance(batch, dict):
        return DictList({key: flatten_steps(value, transpose) for key, value in batch.items()})
    if isinstance(batch, list):
        return batch
    if transpose:
        batch = batch.transpose(0, 1)
    return batch.reshape(-1, *batch.shape[2:])


def _keys_of(obs):
    return sorted(obs.keys()) if isinstance(obs, dict) else type(obs).__name__
