"""Observation buffers shared by ``ParallelEnv``'s worker processes and the main process.

Pickling a worker's observations through its pipe costs the main process tens of microseconds per worker and
step, and on many cores that serial cost is what bounds the stepping speed (measured: ~53 us per worker and
step, so ~790 us of the main process per step with 15 workers, which was the whole step time of a 16-core
machine). So the workers write the fixed-shape array entries of their observations (a ``Box`` or ``Discrete``
observation, or such entries of a ``Dict`` one) into memory mapped before they were forked, and send only the
rest (e.g. mission strings) through the pipe. An entry whose shape or dtype differs from its space is simply
sent through the pipe as before.
"""

import math
import mmap
from typing import Any

import gymnasium as gym
import numpy as np

from torch_rl.batching import concat_obs

_ARRAY_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


class InShared:
    """Stands in a message for an entry that was written to the shared buffer."""


class SharedObservations:
    """``arrays[key]``: a (num_envs, *shape) array in shared memory per array entry (key None: the whole obs)."""

    def __init__(self, observation_space: gym.Space, num_envs: int):
        self.arrays = {}
        if isinstance(observation_space, gym.spaces.Dict):
            entries = observation_space.spaces.items()
        else:
            entries = [(None, observation_space)]
        for key, space in entries:
            if not isinstance(space, _ARRAY_SPACES) or space.dtype is None:
                continue
            dtype = np.dtype(space.dtype)
            shape = (num_envs, *space.shape)
            count = math.prod(shape)
            # Anonymous shared memory (MAP_SHARED): forked workers write into the pages the main process reads.
            buffer = mmap.mmap(-1, max(1, count * dtype.itemsize))
            self.arrays[key] = np.frombuffer(buffer, dtype=dtype, count=count).reshape(shape)

    def put(self, batch: Any, start: int) -> Any:
        """In a worker: writes the entries of ``batch`` (observations of envs ``start``...) that fit; returns the
        message to send, with those entries replaced by InShared."""
        if None in self.arrays:
            return InShared() if self._write(None, batch, start) else batch
        if not isinstance(batch, dict):
            return batch
        message = dict(batch)
        for key in self.arrays:
            if key in batch and self._write(key, batch[key], start):
                message[key] = InShared()
        return message

    def get(self, message: Any, start: int, count: int) -> Any:
        """In the main process: the batch of envs ``start``..``start+count-1``, read back from ``message``.

        Entries read from shared memory are views: copy them (e.g. by concatenating) before the next step."""
        if isinstance(message, InShared):
            return self.arrays[None][start : start + count]
        if isinstance(message, dict):
            return {
                key: self.arrays[key][start : start + count] if isinstance(value, InShared) else value
                for key, value in message.items()
            }
        return message

    def _write(self, key, value, start):
        array = self.arrays[key]
        if not (
            isinstance(value, np.ndarray)
            and value.dtype == array.dtype
            and value.shape[1:] == array.shape[1:]
            and start + len(value) <= len(array)
        ):
            return False
        array[start : start + len(value)] = value
        return True

    def gather(self, messages: list[Any], spans: list[tuple[int, int]]) -> Any:
        """In the main process: the whole batch from every worker's message (``spans``: each worker's first env and
        env count, covering all envs in order). Entries that every worker put in shared memory are copied out in
        one piece; the copy is needed, as the workers overwrite the buffers at the next step."""
        if all(isinstance(message, InShared) for message in messages):
            return self.arrays[None].copy()
        if all(isinstance(message, dict) for message in messages):
            batch = {}
            for key in messages[0]:
                values = [message[key] for message in messages]
                if all(isinstance(value, InShared) for value in values):
                    batch[key] = self.arrays[key].copy()
                else:
                    batch[key] = concat_obs(
                        [
                            self.arrays[key][start : start + count] if isinstance(value, InShared) else value
                            for value, (start, count) in zip(values, spans, strict=True)
                        ]
                    )
            return batch
        return concat_obs(
            [self.get(message, start, count) for message, (start, count) in zip(messages, spans, strict=True)]
        )
