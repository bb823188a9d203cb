"""Small user models, written as a user of torch_rl would, for the tests."""

import torch
from torch import nn
from torch.distributions import Categorical, Independent, Normal

import torch_rl


class MLPModel(nn.Module, torch_rl.ACModel):
    def __init__(self, obs_size, num_actions, hidden=64):
        super().__init__()
        self.actor = nn.Sequential(nn.Linear(obs_size, hidden), nn.Tanh(), nn.Linear(hidden, num_actions))
        self.critic = nn.Sequential(nn.Linear(obs_size, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, obs):
        return Categorical(logits=self.actor(obs)), self.critic(obs).squeeze(1)


class RecurrentMLPModel(nn.Module, torch_rl.RecurrentACModel):
    def __init__(self, obs_size, num_actions, hidden=32):
        super().__init__()
        self.hidden = hidden
        self.cell = nn.LSTMCell(obs_size, hidden)
        self.actor = nn.Linear(hidden, num_actions)
        self.critic = nn.Linear(hidden, 1)

    @property
    def memory_size(self):
        return 2 * self.hidden

    def forward(self, obs, memory):
        h, c = self.cell(obs, (memory[:, : self.hidden], memory[:, self.hidden :]))
        return Categorical(logits=self.actor(h)), self.critic(h).squeeze(1), torch.cat([h, c], dim=1)


class GaussianModel(nn.Module, torch_rl.ACModel):
    def __init__(self, obs_size, action_size, hidden=64):
        super().__init__()
        self.mean = nn.Sequential(nn.Linear(obs_size, hidden), nn.Tanh(), nn.Linear(hidden, action_size))
        self.log_std = nn.Parameter(torch.zeros(action_size))
        self.critic = nn.Sequential(nn.Linear(obs_size, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, obs):
        dist = Independent(Normal(self.mean(obs), self.log_std.exp()), 1)
        return dist, self.critic(obs).squeeze(1)
