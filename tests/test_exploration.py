"""Exploration bonuses: counts are exact, RND prefers what it has not learned, state round-trips."""

import io
from collections import Counter

import torch

from torch_rl.dictlist import DictList
from torch_rl.exploration import CountBonus, RNDBonus


def test_count_bonus_is_one_over_sqrt_of_the_exact_count_so_far():
    generator = torch.Generator().manual_seed(0)
    bonus = CountBonus(4)
    seen = Counter()
    for _ in range(5):
        batch = torch.randint(0, 3, (50, 4), generator=generator).float()
        rows = [tuple(row) for row in batch.tolist()]
        seen.update(rows)
        expected = torch.tensor([seen[row] ** -0.5 for row in rows])
        assert torch.allclose(bonus.intrinsic_rewards(batch), expected)
    assert bonus.distinct_observations() == len(seen)


def test_count_bonus_reads_the_image_of_dict_observations_and_ignores_text():
    bonus = CountBonus(7 * 7 * 3)
    image = torch.zeros(2, 7, 7, 3)
    image[1, 0, 0, 0] = 5
    obs = DictList(image=image, text=torch.tensor([[1, 2], [3, 4]]))
    assert bonus.intrinsic_rewards(obs).tolist() == [1.0, 1.0]
    obs.text = torch.tensor([[9, 9], [9, 9]])
    assert torch.allclose(bonus.intrinsic_rewards(obs), torch.full((2,), 2**-0.5))


def test_rnd_gives_more_bonus_to_observations_unlike_those_it_trained_on():
    torch.manual_seed(0)
    familiar = torch.randn(512, 8)
    novel = torch.randn(512, 8) + 4
    bonus = RNDBonus(8, lr=1e-3)
    for _ in range(50):
        bonus.update(familiar)
    assert bonus.intrinsic_rewards(novel).mean() > 3 * bonus.intrinsic_rewards(familiar).mean()


def test_rnd_state_dict_round_trips_the_predictor_optimizer_and_statistics():
    torch.manual_seed(0)
    obs = torch.randn(64, 5)
    trained = RNDBonus(5)
    trained.update(obs)
    trained.intrinsic_rewards(obs)
    saved = io.BytesIO()
    torch.save(trained.state_dict(), saved)
    saved.seek(0)
    copy = RNDBonus(5)
    copy.load_state_dict(torch.load(saved, weights_only=True))  # plain data, as a checkpoint must be
    assert torch.equal(copy.intrinsic_rewards(obs), trained.intrinsic_rewards(obs))
    torch.manual_seed(1)
    copy.update(obs)
    torch.manual_seed(1)
    trained.update(obs)
    assert torch.equal(copy.intrinsic_rewards(obs), trained.intrinsic_rewards(obs))
