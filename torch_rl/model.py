"""The two interfaces a user model implements: ``class MyModel(nn.Module, ACModel)``."""
from abc import ABC, abstractmethod


class ACModel(ABC):
    """An actor-critic model without memory.

    ``forward(obs) -> (dist, value)``: ``obs`` is what ``preprocess_obss`` returns for a batch of N
    observations; ``dist`` a ``torch.distributions.Distribution`` over N actions (Categorical for discrete
    actions, Normal or Independent(Normal) for continuous ones); ``value`` a tensor of shape (N,).
    """

    recurrent = False

    @abstractmethod
    def forward(self, obs):
        raise NotImplementedError


class RecurrentACModel(ACModel):
    """An actor-critic model with memory (e.g. an LSTM).

    ``forward(obs, memory) -> (dist, value, memory)``: ``memory`` is a float tensor of shape
    (N, memory_size); the algorithm zeroes it where an episode starts and trains through ``recurrence`` steps.
    """

    recurrent = True

    @abstractmethod
    def forward(self, obs, memory):
        raise NotImplementedError

    @property
    @abstractmethod
    def memory_size(self):
        raise NotImplementedError
