import pytest
import torch

from torch_rl.gae import compute_gae


def test_gae_matches_a_hand_computed_example_with_truncation_and_termination():
    # Two envs, four steps, gamma 0.9, lambda 0.5, all rewards 1, values 0.5 0.6 0.7 0.8, last value 0.9.
    # Env 0 is truncated at step 1 (final observation's value 2.0): bootstrap from 2.0, then restart.
    # Env 1 terminates at step 1: no bootstrap.
    rewards = torch.ones(4, 2)
    values = torch.tensor([0.5, 0.6, 0.7, 0.8]).unsqueeze(1).repeat(1, 2)
    last_values = torch.tensor([0.9, 0.9])
    terminated = torch.zeros(4, 2, dtype=torch.bool)
    truncated = torch.zeros(4, 2, dtype=torch.bool)
    final_values = torch.zeros(4, 2)
    truncated[1, 0] = True
    final_values[1, 0] = 2.0
    terminated[1, 1] = True

    advantages, returns = compute_gae(rewards, values, last_values, terminated, truncated, final_values, 0.9, 0.5)

    # deltas: t0 1+.9*.6-.5=1.04, t1 (trunc) 1+.9*2-.6=2.2, (term) 1-.6=.4, t2 1+.9*.8-.7=1.02, t3 1+.9*.9-.8=1.01
    # A3=1.01, A2=1.02+.45*1.01=1.4745, A1=2.2 | .4 (recursion stops), A0=1.04+.45*A1
    expected_env0 = [1.04 + 0.45 * 2.2, 2.2, 1.4745, 1.01]
    expected_env1 = [1.04 + 0.45 * 0.4, 0.4, 1.4745, 1.01]
    assert advantages[:, 0].tolist() == pytest.approx(expected_env0)
    assert advantages[:, 1].tolist() == pytest.approx(expected_env1)
    assert torch.allclose(returns, advantages + values)


def test_terminated_wins_over_truncated_in_the_same_step():
    rewards = torch.ones(1, 1)
    values = torch.zeros(1, 1)
    flags = torch.ones(1, 1, dtype=torch.bool)
    advantages, _ = compute_gae(rewards, values, torch.tensor([5.0]), flags, flags, torch.full((1, 1), 7.0), 0.99, 0.95)
    assert advantages.item() == pytest.approx(1.0)


def test_without_episode_ends_gae_with_lambda_one_is_the_discounted_return():
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.zeros(3, 1)
    no = torch.zeros(3, 1, dtype=torch.bool)
    _, returns = compute_gae(rewards, values, torch.tensor([10.0]), no, no, torch.zeros(3, 1), 0.5, 1.0)
    assert returns[:, 0].tolist() == pytest.approx(
        [1 + 0.5 * 2 + 0.25 * 3 + 0.125 * 10, 2 + 0.5 * 3 + 0.25 * 10, 3 + 5]
    )
