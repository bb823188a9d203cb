"""The two interfaces a user model implements: ``class MyModel(nn.Module, ACModel)``."""

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch.distributions import Distribution


class ACModel(ABC):
    """An actor-critic model without memory.

    ``forward(obs) -> (dist, value)``: ``obs`` is what ``preprocess_obss`` returns for a batch of N
    observations; ``dist`` a ``torch.distributions.Distribution`` over N actions (Categorical for discrete
    actions, Normal or Independent(Normal) for continuous ones); ``value`` a tensor of shape (N,).
    """

    recurrent = False

    @abstractmethod
    def forward(self, obs: Any) -> tuple[Distribution, torch.Tensor]:
        raise NotImplementedError


class RecurrentACModel(ACModel):
    """An actor-critic model with memory (e.g. an LSTM).

    ``forward(obs, memory) -> (dist, value, memory)``: ``memory`` is a float tensor of shape
    (N, memory_size); the algorithm zeroes it where an episode starts and trains through ``recurrence`` steps.

    Optional, for speed: ``forward_sequence(obs, memory, mask) -> (dist, value, memories)`` runs T steps of N
    sequences in one call. ``obs`` holds T*N rows, time-major (row t*N + i is sequence i at step t); ``memory``
    (N, memory_size) is the memory before step 0; ``mask`` (T*N,) is 0 where the memory must be zeroed before
    the step. It returns the distribution and value for all T*N rows and ``memories`` (T*N, memory_size), the
    memory each step outputs. A model that defines it can run its memory-independent layers (convolutions,
    heads) on all rows at once, so training no longer calls the model ``recurrence`` times per mini-batch.
    It must compute what ``forward`` would, step by step; the default model (``model.py``) shows how.
    """

    recurrent = True

    @abstractmethod
    def forward(self, obs: Any, memory: torch.Tensor) -> tuple[Distribution, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    @property
    @abstractmethod
    def memory_size(self) -> int:
        raise NotImplementedError
