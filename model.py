"""The default actor-critic model of the starter files: edit it, or copy it, for your own environments.

- MiniGrid (dict observation with a 7x7x3 ``image``): a small conv net (16-32-64 filters, 2x2 kernels, one
  max-pool) to a 64-d embedding; with ``use_text`` a word embedding + GRU over the mission is appended.
- Flat Box observations: a 2-layer MLP (64 units, tanh).
- ``use_memory``: an LSTM cell after the embedding, so the agent remembers across steps.
- Discrete actions: a Categorical head; Box actions: a diagonal Gaussian with a learned log-std.
"""

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal

import torch_rl


def init_params(module):
    """Orthogonal-style init of the classic starter files: rows normalised, zero biases."""
    if isinstance(module, nn.Linear):
        module.weight.data.normal_(0, 1)
        module.weight.data *= 1 / torch.sqrt(module.weight.data.pow(2).sum(1, keepdim=True))
        if module.bias is not None:
            module.bias.data.fill_(0)


class ACModel(nn.Module, torch_rl.RecurrentACModel):
    """``obs_space``: what ``utils.get_obss_preprocessor`` returns, e.g. ``{"image": (7, 7, 3), "text": 100}``
    or ``{"flat": 3}``; ``action_space``: the env's (Discrete or Box)."""

    def __init__(self, obs_space, action_space, use_memory=False, use_text=False):
        super().__init__()
        self.use_memory = use_memory
        self.use_text = use_text
        self.image_input = "image" in obs_space
        if self.image_input:
            n, m, channels = obs_space["image"]
            self.image_conv = nn.Sequential(
                nn.Conv2d(channels, 16, (2, 2)),
                nn.ReLU(),
                nn.MaxPool2d((2, 2)),
                nn.Conv2d(16, 32, (2, 2)),
                nn.ReLU(),
                nn.Conv2d(32, 64, (2, 2)),
                nn.ReLU(),
            )
            self.image_embedding_size = ((n - 1) // 2 - 2) * ((m - 1) // 2 - 2) * 64
        else:
            self.image_conv = nn.Sequential(nn.Linear(obs_space["flat"], 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
            self.image_embedding_size = 64

        if self.use_memory:
            self.memory_rnn = nn.LSTMCell(self.image_embedding_size, self.semi_memory_size)
        if self.use_text:
            if "text" not in obs_space:
                raise ValueError("use_text needs an observation with a text mission")
            self.word_embedding_size = 32
            self.word_embedding = nn.Embedding(obs_space["text"], self.word_embedding_size)
            self.text_embedding_size = 128
            self.text_rnn = nn.GRU(self.word_embedding_size, self.text_embedding_size, batch_first=True)

        self.embedding_size = self.semi_memory_size + (self.text_embedding_size if use_text else 0)
        self.continuous = isinstance(action_space, gym.spaces.Box)
        num_outputs = int(np.prod(action_space.shape)) if self.continuous else int(action_space.n)
        self.actor = nn.Sequential(nn.Linear(self.embedding_size, 64), nn.Tanh(), nn.Linear(64, num_outputs))
        self.critic = nn.Sequential(nn.Linear(self.embedding_size, 64), nn.Tanh(), nn.Linear(64, 1))
        if self.continuous:
            self.log_std = nn.Parameter(torch.zeros(num_outputs))
            low = torch.as_tensor(action_space.low, dtype=torch.float32).flatten()
            high = torch.as_tensor(action_space.high, dtype=torch.float32).flatten()
            # The Gaussian's mean lives in [-1, 1]; it is scaled to the action range.
            self.register_buffer("action_center", (high + low) / 2)
            self.register_buffer("action_scale", (high - low) / 2)
        self.apply(init_params)
        if self.use_memory:
            # Forget gate biased open (Gers et al. 2000; Jozefowicz et al. 2015): at PyTorch's default (~0) the
            # cell keeps half of itself per step, so a cue seen 6 steps before a choice is down to 1/64.
            size = self.semi_memory_size
            with torch.no_grad():
                self.memory_rnn.bias_ih[size : 2 * size].fill_(1.0)  # PyTorch's gate order: input, forget, cell, output
                self.memory_rnn.bias_hh[size : 2 * size].fill_(0.0)

    @property
    def recurrent(self):
        return self.use_memory

    @property
    def memory_size(self):
        return 2 * self.semi_memory_size

    @property
    def semi_memory_size(self):
        return self.image_embedding_size

    def forward(self, obs, memory=None):
        x = self._embed(obs)
        if self.use_memory:
            hidden = (memory[:, : self.semi_memory_size], memory[:, self.semi_memory_size :])
            hidden = self.memory_rnn(x, hidden)
            memory = torch.cat(hidden, dim=1)
            x = hidden[0]
        dist, value = self._heads(x, obs)
        if self.use_memory:
            return dist, value, memory
        return dist, value

    def forward_sequence(self, obs, memory, mask):
        """T steps of N sequences at once (see ``torch_rl.RecurrentACModel``): the conv net, text GRU and heads
        run once on all T*N rows; only the LSTM cell steps through time (benchmarks/recurrent.py measures what
        that saves)."""
        x = self._embed(obs)
        n = memory.shape[0]
        h, c = memory[:, : self.semi_memory_size], memory[:, self.semi_memory_size :]
        memories = []
        for t in range(x.shape[0] // n):
            keep = mask[t * n : (t + 1) * n].unsqueeze(1)
            h, c = self.memory_rnn(x[t * n : (t + 1) * n], (h * keep, c * keep))
            memories.append(torch.cat((h, c), dim=1))
        memories = torch.cat(memories)
        dist, value = self._heads(memories[:, : self.semi_memory_size], obs)
        return dist, value, memories

    def _embed(self, obs):
        """The memory-independent part: image (or flat observation) to a vector."""
        if self.image_input:
            x = obs.image.permute(0, 3, 1, 2)  # NHWC -> NCHW
            return self.image_conv(x).reshape(x.shape[0], -1)
        return self.image_conv(obs.flat)

    def _heads(self, embedding, obs):
        """The mission's GRU encoding is appended; then the policy distribution and the value."""
        if self.use_text:
            _, hidden = self.text_rnn(self.word_embedding(obs.text))
            embedding = torch.cat((embedding, hidden[-1]), dim=1)
        value = self.critic(embedding).squeeze(1)
        logits = self.actor(embedding)
        if self.continuous:
            mean = self.action_center + self.action_scale * torch.tanh(logits)
            dist = Independent(
                Normal(mean, self.log_std.exp() * self.action_scale, validate_args=False), 1, validate_args=False
            )
        else:
            dist = Categorical(
                logits=logits, validate_args=False
            )  # per-call argument checks cost a visible share of a step
        return dist, value
