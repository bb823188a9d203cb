"""Exploration bonuses: counts are exact, RND prefers what it has not learned, state round-trips; wired into the
algorithms, GAE sees coef * bonus of the next observation and the logs keep intrinsic and env returns apart."""

import io
from collections import Counter

import pytest
import torch

import torch_rl
from tests.envs import FixedLengthEnv
from tests.models import MLPModel
from torch_rl.dictlist import DictList
from torch_rl.exploration import (
    CountBonus,
    EpisodicCountBonus,
    ExplorationBonus,
    NovelDBonus,
    RNDBonus,
    SumOfBonuses,
    make_exploration_bonus,
)
from torch_rl.gae import compute_gae
from utils import checkpoint as checkpoints


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


def test_episodic_count_pays_the_count_bonus_on_a_first_visit_in_the_episode_only():
    generator = torch.Generator().manual_seed(0)
    steps, num_envs = 20, 3
    bonus = EpisodicCountBonus(2)
    ever = Counter()
    episodes = [Counter() for _ in range(num_envs)]  # each env's current episode's counts
    for _ in range(6):  # rollouts: episodes carry over from one to the next
        obs = torch.randint(0, 3, (steps, num_envs, 2), generator=generator).float()
        done = torch.rand(steps, num_envs, generator=generator) < 0.15
        rows = [[tuple(obs[t, i].tolist()) for i in range(num_envs)] for t in range(steps)]
        ever.update(row for step in rows for row in step)  # the count bonus counts the rollout whole
        first_visit = torch.zeros(steps, num_envs, dtype=torch.bool)
        for t in range(steps):
            for i in range(num_envs):
                if done[t, i]:  # the next observation is the next episode's first
                    episodes[i] = Counter()
                episodes[i][rows[t][i]] += 1
                first_visit[t, i] = episodes[i][rows[t][i]] == 1 and not done[t, i]
        expected = torch.tensor([[ever[row] ** -0.5 for row in step] for step in rows]) * first_visit
        got = bonus.intrinsic_rewards(obs.reshape(-1, 2), done).reshape(steps, num_envs)
        assert torch.allclose(got, expected)
        assert 0 < int(first_visit.sum()) < steps * num_envs
    # only the current episodes' observations stay in the episodic table; the count table is what is saved
    assert len(bonus.episode_keys) == sum(len(counts) for counts in episodes)
    assert set(bonus.state_dict()) == {"weights", "hashes", "counts"}


def test_noveld_pays_the_growth_of_the_count_bonus_on_a_first_visit_in_the_episode_only():
    generator = torch.Generator().manual_seed(1)
    steps, num_envs, alpha = 20, 3, 0.5
    bonus = NovelDBonus(2, alpha=alpha)
    ever = Counter()
    episodes = [Counter() for _ in range(num_envs)]
    before = [None] * num_envs  # each env's observation before the rollout's first step
    clamped = 0  # first visits whose count bonus fell from the observation before
    for _ in range(6):
        obs = torch.randint(0, 3, (steps, num_envs, 2), generator=generator).float()
        obs[torch.rand(steps, num_envs, generator=generator) < 0.5] = 0  # one common view, for falls
        done = torch.rand(steps, num_envs, generator=generator) < 0.15
        rows = [[tuple(obs[t, i].tolist()) for i in range(num_envs)] for t in range(steps)]
        ever.update(row for step in rows for row in step)
        expected = torch.zeros(steps, num_envs)
        for i in range(num_envs):
            for t in range(steps):
                if done[t, i]:
                    episodes[i] = Counter()
                episodes[i][rows[t][i]] += 1
                previous = rows[t - 1][i] if t > 0 else before[i]
                current = 0.0 if previous is None else ever[previous] ** -0.5
                growth = max(ever[rows[t][i]] ** -0.5 - alpha * current, 0.0)
                if episodes[i][rows[t][i]] == 1 and not done[t, i]:
                    expected[t, i] = growth
                    clamped += growth == 0
            before[i] = rows[-1][i]
        got = bonus.intrinsic_rewards(obs.reshape(-1, 2), done).reshape(steps, num_envs)
        assert torch.allclose(got, expected)
        assert 0 < int((expected > 0).sum()) < steps * num_envs
    assert clamped > 0
    assert set(bonus.state_dict()) == {"weights", "hashes", "counts"}


def test_noveld_pays_for_a_step_into_the_new_not_for_one_among_equally_new_views():
    bonus = NovelDBonus(1)
    familiar, new = torch.zeros(1, 1), torch.ones(1, 1)
    bonus.intrinsic_rewards(familiar.repeat(99, 1), torch.zeros(99, 1, dtype=torch.bool))
    # from a view seen 100 times into one never seen: 1 - 0.5 * 0.1; the episodic count would pay 1 as well
    reward = bonus.intrinsic_rewards(torch.cat([familiar, new]), torch.zeros(2, 1, dtype=torch.bool))
    assert reward.tolist() == pytest.approx([0.0, 0.95])
    # between two views as new as each other, the growth is at most half the bonus
    views = torch.arange(2, 6).float().reshape(4, 1)
    reward = bonus.intrinsic_rewards(views, torch.zeros(4, 1, dtype=torch.bool))
    assert reward[1:].tolist() == pytest.approx([0.5, 0.5, 0.5])


def test_episodic_count_needs_done():
    with pytest.raises(ValueError, match="needs done"):
        EpisodicCountBonus(2).intrinsic_rewards(torch.zeros(4, 2))


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


# ------------------------------------------------------------------------------------ wired into the algorithms


class ObservationPlusOne(ExplorationBonus):
    """A bonus the test can predict: the observation's value + 1; counts its updates."""

    def __init__(self):
        super().__init__()
        self.register_buffer("updates", torch.zeros((), dtype=torch.int64))
        self.updated_on = None

    def intrinsic_rewards(self, obs, done=None):
        return obs[:, 0] + 1

    def update(self, obs):
        self.updates += 1
        self.updated_on = obs.clone()
        return {"stub_updates": int(self.updates)}


def make_ppo(bonus=None, coef=0.5, num_envs=3, **kwargs):
    torch.manual_seed(0)
    envs = [FixedLengthEnv(length=3 + i) for i in range(num_envs)]
    return torch_rl.PPOAlgo(
        envs,
        MLPModel(1, 2),
        num_frames_per_proc=8,
        batch_size=8,
        epochs=1,
        num_workers=0,
        seed=0,
        exploration_bonus=bonus,
        exploration_coef=coef,
        **kwargs,
    )


def next_observations(algo):
    """Each step's next observation, (T, N): the next step's input, then the observation after the rollout."""
    steps = torch.stack(algo.rollout.obs[1:] + [algo.preprocessed_obs])
    return steps[..., 0]


def test_gae_uses_the_env_reward_plus_coef_times_the_bonus_of_the_next_observation():
    bonus = ObservationPlusOne()
    with make_ppo(bonus, coef=0.5) as algo:
        for _ in range(2):  # the second rollout starts mid-episode
            exps, logs = algo.collect_experiences()
        rollout = algo.rollout
        expected_rewards = rollout.rewards + 0.5 * (next_observations(algo) + 1)
        # the episode-ending steps get the bonus of the next episode's first observation (0): non-episodic
        ended = rollout.terminateds
        assert bool(ended.any()) and torch.equal(next_observations(algo)[ended], torch.zeros(int(ended.sum())))
        assert torch.equal(exps.reward, expected_rewards.transpose(0, 1).reshape(-1))
        _, last_values, _ = algo._model_step(algo.preprocessed_obs)
        advantages, _ = compute_gae(
            expected_rewards,
            rollout.values,
            last_values.detach(),
            rollout.terminateds,
            rollout.truncateds,
            rollout.final_values,
            algo.discount,
            algo.gae_lambda,
        )
        assert torch.allclose(exps.advantage, advantages.transpose(0, 1).reshape(-1))
        # the bonus learnt from the same next observations, once per rollout
        assert int(bonus.updates) == 2 and torch.equal(bonus.updated_on[:, 0], next_observations(algo).reshape(-1))
        assert logs["stub_updates"] == 2


def test_logs_keep_the_env_return_and_show_the_intrinsic_return_apart():
    with make_ppo(ObservationPlusOne(), coef=0.5) as algo:
        logs = algo.update_parameters()
    # env i's episodes last 3 + i steps with reward 1 per step: the env return is the length
    assert logs["return_per_episode"] == [float(n) for n in logs["num_frames_per_episode"]]
    # the intrinsic return of an episode of n steps: next observations 1..n-1 then 0, each + 1
    expected = [float(sum(range(1, n)) + n) if n else 0.0 for n in logs["num_frames_per_episode"]]
    assert logs["intrinsic_return_per_episode"] == expected
    assert logs["intrinsic_return_mean"] == pytest.approx(sum(expected) / len(expected))
    assert logs["intrinsic_reward_mean"] > 1


def test_without_a_bonus_gae_uses_the_env_reward_exactly_and_no_intrinsic_logs():
    with make_ppo(None) as algo:
        exps, logs = algo.collect_experiences()
        assert torch.equal(exps.reward, algo.rollout.rewards.transpose(0, 1).reshape(-1))
    assert not any(key.startswith("intrinsic") for key in logs)


@pytest.mark.parametrize("kind", ["rnd", "count", "both"])
def test_the_bonus_state_round_trips_through_the_algorithm_and_the_checkpoint(kind, tmp_path):
    example = torch.zeros(1, 1)
    with make_ppo(make_exploration_bonus(kind, example), coef=0.1) as trained:
        trained.update_parameters()
        trained.update_parameters()
        state = trained.state_dict()
        probe = torch.arange(6.0).reshape(6, 1)
        checkpoint = checkpoints.Checkpoint(model_state=trained.acmodel.state_dict(), algo_state=state)
        checkpoints.save(checkpoint, tmp_path)
        loaded = checkpoints.load(tmp_path)  # weights_only, each field checked
        assert loaded.algo_state["exploration_bonus"] is not None
        with make_ppo(make_exploration_bonus(kind, example), coef=0.1) as resumed:
            resumed.load_state_dict(loaded.algo_state)
            torch.manual_seed(3)
            expected = trained.exploration_bonus.intrinsic_rewards(probe)
            torch.manual_seed(3)
            assert torch.equal(resumed.exploration_bonus.intrinsic_rewards(probe), expected)


def test_both_is_the_sum_of_rnd_and_counts():
    bonus = make_exploration_bonus("both", torch.zeros(1, 4))
    assert isinstance(bonus, SumOfBonuses)
    obs = torch.randn(5, 4)
    rnd, count = bonus.bonuses["rnd"], bonus.bonuses["count"]
    state = {name: part.state_dict() for name, part in bonus.bonuses.items()}
    total = bonus.intrinsic_rewards(obs)
    rnd.load_state_dict(state["rnd"])
    count.load_state_dict(state["count"])
    assert torch.allclose(total, rnd.intrinsic_rewards(obs) + count.intrinsic_rewards(obs))


def test_an_unknown_bonus_is_refused():
    with pytest.raises(ValueError, match="rnd, count, episodic, noveld, both"):
        make_exploration_bonus("curiosity", torch.zeros(1, 4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", ["count", "episodic", "noveld"])
def test_the_counting_bonuses_give_the_same_rewards_on_cuda_as_on_the_cpu(kind):
    generator = torch.Generator().manual_seed(0)
    bonuses = {device: make_exploration_bonus(kind, torch.zeros(1, 4)).to(device) for device in ("cpu", "cuda")}
    for _ in range(3):
        obs = torch.randint(0, 3, (32 * 4, 4), generator=generator).float()
        done = torch.rand(32, 4, generator=generator) < 0.1
        cpu = bonuses["cpu"].intrinsic_rewards(obs, done)
        cuda = bonuses["cuda"].intrinsic_rewards(obs.cuda(), done.cuda())
        assert cuda.device.type == "cuda" and torch.allclose(cuda.cpu(), cpu)
