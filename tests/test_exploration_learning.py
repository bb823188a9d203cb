"""The exploration bonus makes a tiny sparse-reward task solvable where PPO alone never finds the reward."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import torch_rl
from tests.models import MLPModel
from torch_rl.exploration import RNDBonus, make_exploration_bonus

LENGTH = 30  # states of the chain
pytestmark = pytest.mark.slow


class Chain(gym.Env):
    """A corridor of LENGTH cells, seen as a one-hot position: left or right; reward 1 (and the end) at the far
    right cell. In 40 steps a random walk gets there with probability ~1e-6, so without exploration PPO never
    sees a reward."""

    def __init__(self, max_steps=40):
        self.max_steps = max_steps
        self.observation_space = gym.spaces.Box(0, 1, (LENGTH,), np.float32)
        self.action_space = gym.spaces.Discrete(2)

    def _obs(self):
        obs = np.zeros(LENGTH, np.float32)
        obs[self.position] = 1
        return obs

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.position, self.steps = 0, 0
        return self._obs(), {}

    def step(self, action):
        self.steps += 1
        self.position = min(LENGTH - 1, max(0, self.position + (1 if action == 1 else -1)))
        goal = self.position == LENGTH - 1
        return self._obs(), float(goal), goal, self.steps >= self.max_steps and not goal, {}


def best_mean_return(bonus, coef=0.05, updates=50):
    """The best mean episode return over ``updates`` PPO updates of 512 frames."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    algo = torch_rl.PPOAlgo(
        [Chain() for _ in range(8)],
        MLPModel(LENGTH, 2),
        num_frames_per_proc=64,
        batch_size=128,
        lr=3e-3,
        num_workers=0,
        seed=0,
        exploration_bonus=bonus,
        exploration_coef=coef,
    )
    try:
        return max(float(np.mean(algo.update_parameters()["return_per_episode"])) for _ in range(updates))
    finally:
        algo.close()
        torch.set_num_threads(threads)


def test_without_a_bonus_ppo_never_reaches_the_reward():
    assert best_mean_return(None) == 0


@pytest.mark.parametrize("kind", ["count", "episodic", "noveld", "rnd", "both"])
def test_with_a_bonus_ppo_reaches_the_reward_in_most_episodes(kind):
    assert best_mean_return(make_exploration_bonus(kind, torch.zeros(1, LENGTH))) >= 0.5


def test_an_uncentred_rnd_bonus_rewards_staying_alive_and_misses_the_goal():
    # why make_exploration_bonus centres RND: the uncentred bonus is ~1 per step however familiar the states
    assert best_mean_return(RNDBonus(LENGTH)) == 0
