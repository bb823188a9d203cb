"""PPO must really learn: a broken loss, advantage or sampling cannot reach these returns."""

import gymnasium as gym
import numpy as np
import pytest
import torch

import torch_rl
from tests.models import MLPModel


def evaluate(model, episodes=10, seed=1000):
    env = gym.make("CartPole-v1")
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                dist, _ = model(torch.as_tensor(obs).unsqueeze(0))
            obs, reward, terminated, truncated, _ = env.step(int(dist.sample()))
            total += reward
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.slow
def test_ppo_learns_cartpole_above_195_within_40k_frames():
    torch.manual_seed(0)
    model = MLPModel(4, 2)
    envs = [gym.make("CartPole-v1") for _ in range(8)]
    assert evaluate(model) < 60  # a random policy balances for ~20 steps
    with torch_rl.PPOAlgo(envs, model, num_frames_per_proc=128, lr=3e-3, normalize_advantages=True, seed=0) as algo:
        frames = 0
        while frames < 40_000:
            frames += algo.update_parameters()["num_frames"]
    assert evaluate(model) > 195
