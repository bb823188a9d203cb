"""The default actor-critic model of the starter files: edit it, or copy it, for your own environments.

- MiniGrid (dict observation with an ``image``): a small conv net sized to the image (``image_net``): the 7x7 view
  of cell codes goes through 16-32-64 filters, 2x2 kernels and one max-pool to a 64-d embedding (the convs are
  ``torch_rl.PatchConv2d``: ``nn.Conv2d``, computed faster on a CPU at these tiny sizes); full grids
  (``--obs full``) and RGB frames (``--obs rgb``, ``rgb-full``) get the same net, fitted to their size. With
  ``use_text`` a word embedding + GRU over the mission is appended.
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
from torch_rl import PatchConv2d


def init_params(module):
    """Orthogonal-style init of the classic starter files: rows normalised, zero biases."""
    if isinstance(module, nn.Linear):
        module.weight.data.normal_(0, 1)
        module.weight.data *= 1 / torch.sqrt(module.weight.data.pow(2).sum(1, keepdim=True))
        if module.bias is not None:
            module.bias.data.fill_(0)


# Images whose sides are this long or longer are RGB frames (Minigrid's RGB wrappers draw 8x8 pixels per cell: a
# 7x7 view is 56x56, a 5x5 grid 40x40); smaller ones are grids of cell codes (MiniGrid's largest are 25x25).
PIXELS_MIN_SIDE = 32
TILE_SIZE = 8  # pixels per cell in Minigrid's RGB wrappers (their default tile_size)
MAX_POOLED_SIDE = 4  # large grids are max-pooled to at most 4x4 cells of 64 features: the embedding stays <= 1024


def image_net(height, width, channels):
    """(conv net, embedding size) for images of ``height`` x ``width`` x ``channels`` (NCHW into the net).

    - Grids of cell codes of 7x7 or more: the classic starter-files net (2x2 convs of 16, 32, 64 filters, one
      2x2 max-pool); on the 7x7 view it ends at 1x1x64, and its layers are exactly those of models saved before
      the net was sized, so that they load.
    - Smaller grids (the full 5x5 or 6x6 grid): the same convs without the max-pool, which would shrink them to
      nothing.
    - RGB frames (sides >= PIXELS_MIN_SIDE): a first conv with 8x8 kernels and stride 8 turns each cell's tile
      into 16 features, which then go through the grid net above (56x56 -> 7x7, 40x40 -> 5x5).
    A net whose output is larger than MAX_POOLED_SIDE cells a side (grids from 16x16) is max-pooled to that size.
    """
    layers = []
    if min(height, width) >= PIXELS_MIN_SIDE:
        layers += [PatchConv2d(channels, 16, (TILE_SIZE, TILE_SIZE), stride=TILE_SIZE), nn.ReLU()]
        height, width, channels = height // TILE_SIZE, width // TILE_SIZE, 16
    if min(height, width) >= 7:
        layers += [
            PatchConv2d(channels, 16, (2, 2)),
            nn.ReLU(),
            nn.MaxPool2d((2, 2)),
            PatchConv2d(16, 32, (2, 2)),
            nn.ReLU(),
            PatchConv2d(32, 64, (2, 2)),
            nn.ReLU(),
        ]
        height, width = (height - 1) // 2 - 2, (width - 1) // 2 - 2
    elif min(height, width) >= 4:
        layers += [PatchConv2d(channels, 16, (2, 2)), nn.ReLU(), PatchConv2d(16, 32, (2, 2)), nn.ReLU()]
        layers += [PatchConv2d(32, 64, (2, 2)), nn.ReLU()]
        height, width = height - 3, width - 3
    else:
        raise ValueError(f"the default model needs images of at least 4x4 cells, got {height}x{width}")
    if max(height, width) > MAX_POOLED_SIDE:
        height, width = min(height, MAX_POOLED_SIDE), min(width, MAX_POOLED_SIDE)
        layers.append(nn.AdaptiveMaxPool2d((height, width)))
    return nn.Sequential(*layers), height * width * 64


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
            self.pixels = min(n, m) >= PIXELS_MIN_SIDE
            self.image_conv, self.image_embedding_size = image_net(n, m, channels)
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
            if self.pixels:  # 0..255 colour values to 0..1, the scale the conv's default init expects
                x = x / 255.0
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
