"""Helpers that turn per-env observations into batches and back, whatever their structure.

A batch is an array/tensor with the env index first, a list (e.g. of mission strings), or a dict of batches.
"""
import numpy as np
import torch

from torch_rl.dictlist import DictList


def stack_obs(observations):
    """Stacks a list of per-env observations (arrays, numbers, strings or dicts of them) into one batch."""
    if len(observations) == 0:
        raise ValueError("cannot stack an empty list of observations")
    first = observations[0]
    if isinstance(first, dict):
        keys = first.keys()
        for obs in observations:
            if not isinstance(obs, dict) or obs.keys() != keys:
                raise ValueError(f"observations have different keys: {sorted(keys)} vs {_keys_of(obs)}")
        return {key: stack_obs([obs[key] for obs in observations]) for key in keys}
    if isinstance(first, str):
        return list(observations)
    if isinstance(first, torch.Tensor):
        return torch.stack(observations)
    return np.stack([np.asarray(obs) for obs in observations])


def concat_obs(batches):
    """Concatenates batches along the env axis (e.g. the chunks of several worker processes)."""
    first = batches[0]
    if isinstance(first, dict):
        return {key: concat_obs([batch[key] for batch in batches]) for key in first}
    if isinstance(first, list):
        return [item for batch in batches for item in batch]
    if isinstance(first, torch.Tensor):
        return torch.cat(batches)
    return np.concatenate(batches)


def index_obs(batch, index):
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


def stack_steps(steps):
    """Stacks a list of T preprocessed batches (tensors or DictLists of shape (N, ...)) to shape (T, N, ...).

    Trailing dimensions that differ between steps (e.g. token sequences padded per step) are zero-padded.
    """
    first = steps[0]
    if isinstance(first, dict):
        return DictList({key: stack_steps([step[key] for step in steps]) for key in first})
    if not isinstance(first, torch.Tensor):
        return [item for step in steps for item in step]  # e.g. strings: no step axis, just kept
    shapes = {tuple(step.shape) for step in steps}
    if len(shapes) > 1:
        size = [max(dims) for dims in zip(*shapes)]
        padded = first.new_zeros((len(steps), *size))
        for t, step in enumerate(steps):
            padded[(t, *[slice(0, d) for d in step.shape])] = step
        return padded
    return torch.stack(steps)


def flatten_steps(batch, transpose=True):
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
