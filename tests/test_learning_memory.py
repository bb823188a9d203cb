"""Recurrent PPO learns to remember, for real, on a small budget (a broken memory cannot pass).

torch_rl/CueCorridor-v0 shows a cue at the first step only and rewards the matching choice 6 steps later;
without memory the success rate cannot beat 0.5. With an LSTM trained through 8 steps, PPO must reach 0.9.
"""

import numpy as np
import pytest
import torch

import torch_rl
from model import ACModel
from torch_rl.envs import CueCorridorEnv
from utils.format import get_obss_preprocessor


def _train(use_memory, max_frames, stop_at=None, seed=1):
    torch.manual_seed(seed)
    envs = [CueCorridorEnv(delay=6) for _ in range(16)]
    # one-hot images, as scripts.train gives memory models; the control gets the same input
    obs_space, preprocess = get_obss_preprocessor(envs[0].observation_space, use_text=False, image_encoding="onehot")
    model = ACModel(obs_space, envs[0].action_space, use_memory=use_memory)
    means, frames = [], 0
    with torch_rl.PPOAlgo(envs, model, recurrence=8, preprocess_obss=preprocess, seed=seed, num_workers=0) as algo:
        while frames < max_frames:
            logs = algo.update_parameters()
            frames += logs["num_frames"]
            means.append(np.mean(logs["return_per_episode"]))
            if stop_at is not None and len(means) >= 3 and np.mean(means[-3:]) >= stop_at:
                break
    return means, frames


def test_the_cue_corridor_needs_memory():
    env = CueCorridorEnv(delay=6)
    seen = {}
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        first = obs["image"].tobytes()
        later = []
        for _ in range(6):
            obs, reward, terminated, _, _ = env.step(2)
            later.append(obs["image"].tobytes())
            assert reward == 0 and not terminated
        seen.setdefault(env.cue, set()).add((first, tuple(later)))
        _, reward, terminated, _, _ = env.step(env.cue)
        assert reward == 1.0 and terminated
    (key_runs,), (ball_runs,) = seen[0], seen[1]  # every episode of a cue looks the same
    assert key_runs[0] != ball_runs[0] and key_runs[1] == ball_runs[1]  # only the first observation differs


@pytest.mark.slow
def test_recurrent_ppo_remembers_the_cue():
    means, frames = _train(use_memory=True, max_frames=250_000, stop_at=0.95)
    assert np.mean(means[-3:]) >= 0.95, f"success {np.mean(means[-3:]):.2f} after {frames} frames"


@pytest.mark.slow
def test_without_memory_the_cue_corridor_stays_at_chance():
    means, _ = _train(use_memory=False, max_frames=60_000)
    assert max(np.mean(means[i - 2 : i + 1]) for i in range(2, len(means))) < 0.7


def test_with_swapped_sides_the_right_choice_depends_on_the_cue_and_the_layout():
    env = CueCorridorEnv(delay=2, swap_sides=True)
    outcomes = {}
    for seed in range(40):
        obs, _ = env.reset(seed=seed)
        for _ in range(2):
            obs, _, _, _, _ = env.step(2)
        left, right = obs["image"][2, 5, 0], obs["image"][4, 5, 0]
        assert {left, right} == {5, 6}  # a key and a ball, one on each side
        cue_object = 5 if env.cue == 0 else 6
        choice = 0 if left == cue_object else 1
        _, reward, terminated, _, _ = env.step(choice)
        assert reward == 1.0 and terminated
        outcomes.setdefault(env.cue, set()).add(choice)
        env.reset(seed=seed)  # the same episode again, the other side
        env.step(2), env.step(2)
        _, reward, terminated, _, _ = env.step(1 - choice)
        assert reward == 0.0 and terminated
    assert outcomes[0] == {0, 1} and outcomes[1] == {0, 1}  # neither the cue nor the layout alone decides
