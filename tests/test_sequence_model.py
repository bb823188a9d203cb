"""The default model's forward_sequence (all steps of all sequences in one call) computes what stepping its
forward through time computes: the same memories, the same losses, the same parameter updates."""

import copy

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid envs)
import pytest
import torch

import torch_rl
from model import ACModel
from utils.format import get_obss_preprocessor


def make_algo(use_text, algo_name):
    torch.manual_seed(0)
    envs = [gym.make("MiniGrid-GoToDoor-5x5-v0", max_steps=7) for _ in range(4)]  # short episodes: masks inside
    obs_space, preprocess = get_obss_preprocessor(envs[0].observation_space, use_text=use_text)
    model = ACModel(obs_space, envs[0].action_space, use_memory=True, use_text=use_text)
    kwargs = dict(num_frames_per_proc=16, recurrence=4, preprocess_obss=preprocess, seed=3, num_workers=0)
    if algo_name == "ppo":
        return torch_rl.PPOAlgo(envs, model, batch_size=8, **kwargs)
    return torch_rl.A2CAlgo(envs, model, **kwargs)


def test_the_algorithm_uses_forward_sequence_when_the_model_has_it():
    with make_algo(use_text=False, algo_name="ppo") as algo:
        assert algo.sequence_model


@pytest.mark.parametrize("use_text", [False, True])
def test_recomputed_memories_match_stepping_through_time(use_text):
    with make_algo(use_text, "ppo") as algo:
        exps, _ = algo.collect_experiences()
        assert (exps.mask == 0).any(), "the rollout should contain episode starts"
        with torch.no_grad():
            for p in algo.acmodel.parameters():
                p.add_(0.05 * torch.randn_like(p))  # memories from collection are now stale
        fast = algo.recompute_memories()
        algo.sequence_model = False
        slow = algo.recompute_memories()
    assert not torch.allclose(fast, exps.memory, atol=1e-4)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_text, algo_name", [(False, "ppo"), (True, "ppo"), (False, "a2c")])
def test_one_update_matches_stepping_through_time(use_text, algo_name):
    with make_algo(use_text, algo_name) as algo:
        exps, _ = algo.collect_experiences()
        starts = algo.sequence_starts()[torch.tensor([5, 0, 9, 14])]
        model_state = copy.deepcopy(algo.acmodel.state_dict())
        optimizer_state = copy.deepcopy(algo.optimizer.state_dict())
        results = {}
        for fast in (True, False):
            algo.acmodel.load_state_dict(model_state)
            algo.optimizer.load_state_dict(copy.deepcopy(optimizer_state))
            algo.sequence_model = fast
            stats = algo.optimize_batch(exps, starts)
            results[fast] = stats, [p.detach().clone() for p in algo.acmodel.parameters()]
    (fast_stats, fast_params), (slow_stats, slow_params) = results[True], results[False]
    assert not all(torch.equal(a, b) for a, b in zip(fast_params, model_state.values(), strict=True)), (
        "nothing was updated"
    )
    for key in slow_stats:
        torch.testing.assert_close(fast_stats[key], slow_stats[key], rtol=1e-4, atol=1e-6)
    for a, b in zip(fast_params, slow_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
