import numpy as np
import pytest
import torch

from torch_rl.normalization import ObservationNormalizer, RewardScaler, RunningMeanStd


def test_running_mean_std_matches_numpy_over_uneven_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 3))
    stats = RunningMeanStd((3,))
    for chunk in np.split(data, [10, 11, 400, 777]):
        stats.update(torch.as_tensor(chunk))
    assert stats.mean.numpy() == pytest.approx(data.mean(0), rel=1e-3)
    assert stats.var.numpy() == pytest.approx(data.var(0), rel=1e-3)


def test_observation_normalizer_standardises_and_freezes_when_not_training():
    normalizer = ObservationNormalizer((2,))
    batch = torch.tensor([[0.0, 10.0], [2.0, 30.0], [4.0, 50.0]])
    out = normalizer(batch)
    assert out.mean(0).abs().max() < 1e-3 and (out.std(0, unbiased=False) - 1).abs().max() < 1e-2
    normalizer.training = False
    mean_before = normalizer.mean.clone()
    normalizer(torch.full((5, 2), 1000.0))
    assert torch.equal(normalizer.mean, mean_before)
    assert normalizer(torch.full((1, 2), 1e9)).max() == normalizer.clip


def test_reward_scaler_divides_by_the_std_of_the_discounted_return():
    scaler = RewardScaler(num_envs=1, discount=0.0, device=None)  # discount 0: the return is the reward
    rewards = torch.tensor([[-10.0], [-30.0], [-10.0], [-30.0]])
    for r in rewards:
        scaler.observe(r, torch.tensor([False]))
    std = scaler.stats.var.sqrt().item()
    assert std == pytest.approx(np.std([0.0, -10, -30, -10, -30][1:]), rel=0.05)
    assert scaler.scale(torch.tensor([-20.0])).item() == pytest.approx(-20.0 / std, rel=1e-4)
