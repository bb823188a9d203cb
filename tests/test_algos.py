import copy

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn
from torch.distributions import Categorical

import torch_rl
from tests.envs import ActionCheckingEnv, FixedLengthEnv, NaNRewardEnv
from tests.models import GaussianModel, MLPModel, RecurrentMLPModel
from torch_rl.algos.base import BaseAlgo

ALGOS = {"a2c": torch_rl.A2CAlgo, "ppo": torch_rl.PPOAlgo}


def make_algo(name, envs, model, **kwargs):
    kwargs.setdefault("num_frames_per_proc", 8)
    if name == "ppo":
        kwargs.setdefault("batch_size", 16)
        kwargs.setdefault("epochs", 2)
    return ALGOS[name](envs, model, **kwargs)


def parameters_of(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_all_changed(before, model):
    for old, new in zip(before, model.parameters(), strict=True):
        assert not torch.equal(old, new.detach()), "a parameter was not updated"


@pytest.mark.parametrize("algo_name", ["a2c", "ppo"])
@pytest.mark.parametrize("model_kind", ["feedforward", "recurrent"])
def test_user_model_on_cartpole_updates_every_parameter(algo_name, model_kind):
    torch.manual_seed(0)
    model = MLPModel(4, 2) if model_kind == "feedforward" else RecurrentMLPModel(4, 2)
    before = parameters_of(model)
    envs = [gym.make("CartPole-v1") for _ in range(4)]
    with make_algo(algo_name, envs, model, recurrence=4, seed=1) as algo:
        logs = algo.update_parameters()
    assert_all_changed(before, model)
    assert logs["num_frames"] == 4 * 8
    for key in ("entropy", "value", "policy_loss", "value_loss", "grad_norm"):
        assert np.isfinite(logs[key]), key
    assert 0 < logs["entropy"] <= np.log(2) + 1e-6


@pytest.mark.parametrize("algo_name", ["a2c", "ppo"])
def test_continuous_model_on_pendulum_gets_actions_of_the_env_shape_and_dtype(algo_name):
    torch.manual_seed(0)
    model = GaussianModel(3, 1)
    before = parameters_of(model)
    envs = [ActionCheckingEnv(gym.make("Pendulum-v1")) for _ in range(2)]
    with make_algo(algo_name, envs, model, seed=0) as algo:
        exps, _ = algo.collect_experiences()
        assert exps.action.shape == (16, 1) and exps.log_prob.shape == (16,)
        algo.update_parameters()
    assert_all_changed(before, model)


def test_gymnasium_vector_env_with_same_step_autoreset_is_accepted():
    torch.manual_seed(0)
    env = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1")] * 3, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    with make_algo("ppo", env, MLPModel(4, 2), num_frames_per_proc=64) as algo:
        logs = algo.update_parameters()
    assert logs["num_frames"] == 3 * 64 and logs["num_episodes"] > 0


def test_gymnasium_vector_env_with_next_step_autoreset_is_refused_with_the_fix():
    env = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    with pytest.raises(ValueError, match="SAME_STEP"):
        make_algo("ppo", env, MLPModel(4, 2))


@pytest.mark.parametrize("frames,recurrence,batch", [(10, 4, 16), (8, 3, 16), (8, 4, 18)])
def test_recurrence_must_divide_frames_per_proc_and_batch_size(frames, recurrence, batch):
    with pytest.raises(ValueError, match="recurrence"):
        torch_rl.PPOAlgo(
            [FixedLengthEnv()],
            RecurrentMLPModel(1, 2),
            num_frames_per_proc=frames,
            recurrence=recurrence,
            batch_size=batch,
            num_workers=0,
        )


def test_recurrence_is_ignored_for_a_feedforward_model():
    with torch_rl.A2CAlgo([FixedLengthEnv()], MLPModel(1, 2), recurrence=4, num_workers=0) as algo:
        assert algo.recurrence == 1 and algo.num_frames_per_proc == 5


class CountingModel(nn.Module, torch_rl.RecurrentACModel):
    """memory' = w * memory + 1 and value = memory': with w = 1 the value counts steps since the episode began."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.logits = nn.Parameter(torch.zeros(2))

    @property
    def memory_size(self):
        return 1

    def forward(self, obs, memory):
        memory = self.w * memory + 1
        return Categorical(logits=self.logits.expand(len(obs), 2)), memory[:, 0], memory


def test_memory_is_reset_where_an_episode_starts_during_collection():
    with torch_rl.PPOAlgo(
        [FixedLengthEnv(length=3) for _ in range(2)],
        CountingModel(),
        num_frames_per_proc=8,
        recurrence=4,
        batch_size=8,
        num_workers=0,
    ) as algo:
        exps, _ = algo.collect_experiences()
        # obs[0] is the step within the episode (0, 1, 2, 0, ...), so the value must be obs + 1
        assert torch.equal(exps.value, exps.obs[:, 0] + 1)
        exps, _ = algo.collect_experiences()  # second rollout: memory carried over, still reset at episode starts
        assert torch.equal(exps.value, exps.obs[:, 0] + 1)


class RecordingPPO(torch_rl.PPOAlgo):
    def compute_loss(self, sb, dist, value):
        self.seen.append((sb.obs[:, 0].clone(), value.detach().clone()))
        return super().compute_loss(sb, dist, value)


def test_training_sequences_never_carry_memory_across_an_episode_boundary():
    model = CountingModel()
    model.w.requires_grad_(False)  # keep counting exact while the policy trains
    with RecordingPPO(
        [FixedLengthEnv(length=3) for _ in range(2)],
        model,
        num_frames_per_proc=8,
        recurrence=4,
        batch_size=8,
        epochs=2,
        num_workers=0,
    ) as algo:
        algo.seen = []
        algo.update_parameters()
        algo.update_parameters()
    assert len(algo.seen) > 0
    for obs_step, value in algo.seen:
        assert torch.equal(value, obs_step + 1)


def test_memories_are_recomputed_with_current_parameters():
    model = CountingModel()
    with torch_rl.PPOAlgo(
        [FixedLengthEnv(length=5)], model, num_frames_per_proc=8, recurrence=4, batch_size=8, num_workers=0
    ) as algo:
        algo.collect_experiences()
        exps, _ = algo.collect_experiences()
        stale = exps.memory.clone()
        with torch.no_grad():
            model.w.fill_(0.5)
        fresh = algo.recompute_memories()
    # recompute by hand: rollout start memory, then m <- 0.5 * m * mask + 1
    memory, expected = algo.rollout_start_memory.clone(), []
    for t in range(8):
        expected.append(memory[0, 0].item())
        memory = 0.5 * memory * algo.masks[t].unsqueeze(1) + 1
    assert fresh[:, 0].tolist() == pytest.approx(expected)
    assert not torch.allclose(fresh, stale)


class ValueProbe(nn.Module, torch_rl.ACModel):
    """Value = 10 * observation, so bootstrap values can be read off."""

    def __init__(self):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(2))

    def forward(self, obs):
        return Categorical(logits=self.logits.expand(len(obs), 2)), 10 * obs[:, 0]


def _one_env(kind, **kwargs):
    if kind == "list":
        return [FixedLengthEnv(**kwargs)]
    return gym.vector.SyncVectorEnv(
        [lambda: FixedLengthEnv(**kwargs)], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )


@pytest.mark.parametrize("kind", ["list", "vector env"])
@pytest.mark.parametrize("truncate", [True, False])
def test_truncated_episodes_bootstrap_from_the_final_observation_and_terminated_ones_do_not(truncate, kind):
    with torch_rl.A2CAlgo(
        _one_env(kind, length=3, truncate=truncate, reward=0.0),
        ValueProbe(),
        num_frames_per_proc=3,
        discount=0.5,
        gae_lambda=1.0,
        num_workers=0,
    ) as algo:
        exps, _ = algo.collect_experiences()
    # steps see obs 0, 1, 2; the final observation is 3 (value 30). Rewards are 0, lambda 1: Monte-Carlo returns.
    bootstrap = 30.0 if truncate else 0.0
    assert exps.returnn.tolist() == pytest.approx([0.5**3 * bootstrap, 0.5**2 * bootstrap, 0.5 * bootstrap])


def test_reshape_reward_is_applied_per_env_and_logged_beside_the_raw_return():
    calls = []

    def reshape(obs, action, reward, done):
        calls.append(done)
        return reward * 2

    with torch_rl.A2CAlgo(
        [FixedLengthEnv(length=2) for _ in range(2)],
        MLPModel(1, 2),
        num_frames_per_proc=4,
        reshape_reward=reshape,
        num_workers=0,
    ) as algo:
        _, logs = algo.collect_experiences()
    assert len(calls) == 8
    assert logs["return_per_episode"][:4] == [2.0] * 4
    assert logs["reshaped_return_per_episode"][:4] == [4.0] * 4
    assert logs["num_frames_per_episode"][:4] == [2] * 4


def test_same_seeds_give_the_same_training_run():
    def run():
        torch.manual_seed(3)
        with make_algo("ppo", [gym.make("CartPole-v1") for _ in range(2)], MLPModel(4, 2), seed=7) as algo:
            logs = algo.update_parameters()
            return logs["policy_loss"], [p.detach().clone() for p in algo.acmodel.parameters()]

    loss_a, params_a = run()
    loss_b, params_b = run()
    assert loss_a == loss_b
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b, strict=True))


def test_dict_observations_become_a_dictlist_by_default():
    class DictObs(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = gym.spaces.Dict({"x": env.observation_space})

        def observation(self, obs):
            return {"x": obs, "note": "strings are dropped"}

    class DictModel(MLPModel):
        def forward(self, obs):
            return super().forward(obs.x)

    with make_algo("ppo", [DictObs(gym.make("CartPole-v1"))], DictModel(4, 2)) as algo:
        exps, _ = algo.collect_experiences()
        assert set(exps.obs.keys()) == {"x"} and exps.obs.x.shape == (8, 4)
        algo.update_parameters()


# -------------------------------------------------------------------------------- numerical faults (library)
class NaNValueModel(MLPModel):
    def forward(self, obs):
        dist, value = super().forward(obs)
        return dist, value * float("nan")


class NaNLogitsModel(MLPModel):
    def forward(self, obs):
        dist, value = super().forward(obs)
        return torch.distributions.Categorical(logits=dist.logits * float("nan")), value


def _algo(name, envs, model):
    if name == "ppo":
        return torch_rl.PPOAlgo(envs, model, num_frames_per_proc=8, batch_size=8, epochs=2, num_workers=0, seed=0)
    return torch_rl.A2CAlgo(envs, model, num_frames_per_proc=8, num_workers=0, seed=0)


@pytest.mark.parametrize("algo_name", ["a2c", "ppo"])
@pytest.mark.parametrize("fault", ["NaN reward", "NaN value"])
def test_a_non_finite_loss_raises_before_the_optimizer_step(algo_name, fault):
    torch.manual_seed(0)
    if fault == "NaN reward":
        envs, model = [NaNRewardEnv(), FixedLengthEnv()], MLPModel(1, 2)
    else:
        envs, model = [FixedLengthEnv(), FixedLengthEnv()], NaNValueModel(1, 2)
    before = [p.detach().clone() for p in model.parameters()]
    with _algo(algo_name, envs, model) as algo:
        with pytest.raises(FloatingPointError, match="not finite"):
            algo.update_parameters()
        assert algo.optimizer.state_dict()["state"] == {}, "the optimizer took a step"
    for old, new in zip(before, model.parameters(), strict=True):
        assert torch.equal(old, new.detach())


@pytest.mark.parametrize("algo_name", ["a2c", "ppo"])
def test_a_model_with_nan_outputs_stops_before_any_update(algo_name):
    torch.manual_seed(0)
    model = NaNLogitsModel(1, 2)
    before = [p.detach().clone() for p in model.parameters()]
    with _algo(algo_name, [FixedLengthEnv(), FixedLengthEnv()], model) as algo:
        with pytest.raises((FloatingPointError, ValueError)):
            algo.update_parameters()
    for old, new in zip(before, model.parameters(), strict=True):
        assert torch.equal(old, new.detach())


def test_a_categorical_is_sampled_as_torch_samples_it_and_a_broken_one_is_flagged():
    """The algorithms draw a Categorical's actions without torch.multinomial's checks (see BaseAlgo._sample): the
    same actions from the same generator, and a flag that collect_experiences reads once per rollout."""
    dist = Categorical(logits=torch.randn(64, 7))
    torch.manual_seed(3)
    expected = dist.sample()
    torch.manual_seed(3)
    action, valid = BaseAlgo._sample(dist)
    assert torch.equal(action, expected) and bool(valid)
    for bad in (float("nan"), -0.1):
        probs = torch.softmax(torch.randn(64, 7), -1)
        probs[5, 2] = bad
        _, valid = BaseAlgo._sample(Categorical(probs=probs, validate_args=False))
        assert not bool(valid)


@pytest.mark.parametrize("algo_name", ["a2c", "ppo"])
@pytest.mark.parametrize("max_grad_norm", [0.01, 1e6])  # the gradients clipped, and left as they are
def test_a_gradient_step_forgets_older_gradients_and_clips_as_clip_grad_norm_does(algo_name, max_grad_norm):
    # optimize_batch clears and clips with its own loops (BaseAlgo._clip_gradients, _forget_gradients): the step
    # must be torch's zero_grad, backward, clip_grad_norm_ and optimizer step, to the bit
    torch.manual_seed(0)
    envs = [gym.make("CartPole-v1") for _ in range(4)]
    with make_algo(algo_name, envs, MLPModel(4, 2), max_grad_norm=max_grad_norm, seed=1) as algo:
        algo.update_parameters()  # the optimizer's state exists
        exps, _ = algo.collect_experiences()
        starts = algo.sequence_starts()[: len(exps) // 2]
        model, optimizer = algo.acmodel, algo.optimizer
        saved_model = copy.deepcopy(model.state_dict())
        saved_optimizer = copy.deepcopy(optimizer.state_dict())  # its tensors are the ones the step changes

        for parameter in model.parameters():
            parameter.grad = torch.full_like(parameter, 100.0)  # stale: must not add to the step's gradient
        stats = algo.optimize_batch(exps, starts)
        stepped = parameters_of(model)

        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        loss, _ = algo.batch_loss(exps, starts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
    assert (norm > max_grad_norm) == (max_grad_norm < 1)
    assert torch.equal(stats["grad_norm"], norm)
    for ours, torchs in zip(stepped, model.parameters(), strict=True):
        assert torch.equal(ours, torchs.detach())


def test_gradients_of_several_dtypes_are_clipped_as_clip_grad_norm_clips_them():
    # the fallback of BaseAlgo._clip_gradients, for gradients its single foreach group does not hold
    torch.manual_seed(0)
    model = MLPModel(4, 2)
    model.extra = nn.Parameter(torch.ones(3, dtype=torch.float64))
    with make_algo("a2c", [gym.make("CartPole-v1") for _ in range(2)], model, max_grad_norm=0.5) as algo:
        for parameter in model.parameters():
            parameter.grad = torch.randn_like(parameter)
        twins = [nn.Parameter(p.detach().clone()) for p in model.parameters()]
        for twin, parameter in zip(twins, model.parameters(), strict=True):
            twin.grad = parameter.grad.clone()
        expected_norm = torch.nn.utils.clip_grad_norm_(twins, 0.5)
        norm = algo._clip_gradients()
    assert torch.equal(norm, expected_norm) and norm > 0.5
    for ours, twin in zip(model.parameters(), twins, strict=True):
        assert torch.equal(ours.grad, twin.grad)
