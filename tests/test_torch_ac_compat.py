"""Client code written for torch-ac 1.4 or the original torch-rl runs unchanged (only the import differs).

Three clients, each written the way its users write it (the documented one; rl-starter-files' scripts/train.py, in
torch-ac 1.4's positional order with device third; the original torch-rl's scripts/train.py, in its order without
device), must train DoorKey-5x5 well beyond what a random policy (mean return ~0.03) or a broken update can reach;
smaller tests pin each part of the contract.
"""

import argparse
import inspect

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid envs)
import numpy as np
import pytest
import torch

import torch_rl
from model import ACModel
from tests.envs import FixedLengthEnv
from tests.models import MLPModel, RecurrentMLPModel
from torch_rl.utils import DictList
from torch_rl.utils.penv import ParallelEnv
from utils.env import make_envs
from utils.format import get_obss_preprocessor

ENV_ID = "MiniGrid-DoorKey-5x5-v0"


def list_preprocess_obss(obss, device=None):
    """The documented contract: a list of observations in, a DictList of tensors out."""
    return DictList({"image": torch.tensor(np.array([obs["image"] for obs in obss]), device=device).float()})


@pytest.fixture
def one_torch_thread():
    """As scripts.train: on a busy 2-core machine a second torch thread makes the updates many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------------- the two clients
@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_documented_client_list_preprocessor_reshaped_reward_recurrent_model_learns_doorkey():
    torch.manual_seed(0)
    envs = make_envs(ENV_ID, 16, seed=0)
    model = ACModel({"image": (7, 7, 3)}, envs[0].action_space, use_memory=True)
    reshaped = []

    def reshape_reward(obs, action, reward, done):
        assert isinstance(obs, dict) and obs["image"].shape == (7, 7, 3)
        reshaped.append(reward)
        return 2 * reward

    means = []
    with torch_rl.PPOAlgo(
        envs, model, recurrence=4, preprocess_obss=list_preprocess_obss, reshape_reward=reshape_reward, seed=0
    ) as algo:
        for _ in range(60):
            logs = algo.update_parameters()
            means.append(np.mean(logs["return_per_episode"]))
            if len(means) >= 3 and np.mean(means[-3:]) >= 0.8:
                break
    assert len(reshaped) > 0
    np.testing.assert_allclose(logs["reshaped_return_per_episode"], 2 * np.asarray(logs["return_per_episode"]))
    assert np.mean(means[-3:]) >= 0.8, means


def penv_mean_return(model, preprocess_obss, episodes=32):
    """rl-starter-files' evaluation loop, on envs seeded apart from training's."""
    env = ParallelEnv(make_envs(ENV_ID, 8, seed=1_000_000))
    obss = env.reset()
    returns, episode_returns = [], torch.zeros(8)
    model.eval()
    while len(returns) < episodes:
        with torch.no_grad():
            dist, _ = model(preprocess_obss(obss))
        obss, rewards, terminateds, truncateds, _ = env.step(dist.sample().numpy())
        dones = tuple(a | b for a, b in zip(terminateds, truncateds, strict=True))
        episode_returns += torch.tensor(rewards, dtype=torch.float)
        for i, done in enumerate(dones):
            if done:
                returns.append(episode_returns[i].item())
        episode_returns *= 1 - torch.tensor(dones, dtype=torch.float)
    env.close()
    return np.mean(returns), returns


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_torch_ac_1_4_client_positional_arguments_exps_and_penv_evaluation_learn_doorkey():
    torch.manual_seed(0)
    # rl-starter-files' flags at their defaults (--frames-per-proc None: the algorithm's own, 128 for PPO)
    args = argparse.Namespace(
        algo="ppo", procs=16, frames=100_000, frames_per_proc=None, discount=0.99, lr=0.001, gae_lambda=0.95,
        entropy_coef=0.01, value_loss_coef=0.5, max_grad_norm=0.5, recurrence=1, optim_eps=1e-8, optim_alpha=0.99,
        clip_eps=0.2, epochs=4, batch_size=256,
    )  # fmt: skip
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    envs = make_envs(ENV_ID, args.procs, seed=0)
    obs_space, preprocess_obss = get_obss_preprocessor(envs[0].observation_space, use_text=False)
    acmodel = ACModel(obs_space, envs[0].action_space)
    # rl-starter-files' scripts/train.py, line for line: torch-ac 1.4's positional order, device third
    algo = torch_rl.PPOAlgo(envs, acmodel, device, args.frames_per_proc, args.discount, args.lr, args.gae_lambda,
                            args.entropy_coef, args.value_loss_coef, args.max_grad_norm, args.recurrence,
                            args.optim_eps, args.clip_eps, args.epochs, args.batch_size, preprocess_obss)  # fmt: skip
    assert (algo.device, algo.num_frames_per_proc, algo.discount, algo.batch_size) == (device, 128, 0.99, 256)
    num_frames = 0
    while num_frames < args.frames:
        exps, logs1 = algo.collect_experiences()
        logs2 = algo.update_parameters(exps)
        logs = {**logs1, **logs2}
        num_frames += logs["num_frames"]
        assert min(logs["return_per_episode"]) >= 0 and np.isfinite(logs["policy_loss"])
        if np.mean(logs["return_per_episode"]) >= 0.9:
            break
    algo.close()
    mean, returns = penv_mean_return(acmodel.cpu(), preprocess_obss)
    assert mean >= 0.8, returns


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_original_torch_rl_client_positional_order_without_device_learns_doorkey():
    torch.manual_seed(0)
    # The original torch-rl's flags at their defaults (--frames-per-proc None: the algorithm's own, 128 for PPO)
    args = argparse.Namespace(
        algo="ppo", procs=16, frames=100_000, frames_per_proc=None, discount=0.99, lr=7e-4, gae_lambda=0.95,
        entropy_coef=0.01, value_loss_coef=0.5, max_grad_norm=0.5, recurrence=1, optim_eps=1e-5, optim_alpha=0.99,
        clip_eps=0.2, epochs=4, batch_size=256,
    )  # fmt: skip
    envs = make_envs(ENV_ID, args.procs, seed=0)
    obs_space, preprocess_obss = get_obss_preprocessor(envs[0].observation_space, use_text=False)
    acmodel = ACModel(obs_space, envs[0].action_space)  # this repo's model.py, as torch-rl's own model.py
    # torch-rl's scripts/train.py, line for line: no device, num_frames_per_proc third
    algo = torch_rl.PPOAlgo(envs, acmodel, args.frames_per_proc, args.discount, args.lr, args.gae_lambda,
                            args.entropy_coef, args.value_loss_coef, args.max_grad_norm, args.recurrence,
                            args.optim_eps, args.clip_eps, args.epochs, args.batch_size, preprocess_obss)  # fmt: skip
    assert (algo.num_frames_per_proc, algo.discount, algo.batch_size) == (128, 0.99, 256)
    assert algo.optimizer.param_groups[0]["lr"] == 7e-4 and algo.optimizer.param_groups[0]["eps"] == 1e-5
    num_frames = 0
    while num_frames < args.frames:
        logs = algo.update_parameters()  # torch-rl's one call: collect, then update
        num_frames += logs["num_frames"]
        assert min(logs["return_per_episode"]) >= 0 and np.isfinite(logs["policy_loss"])
        if np.mean(logs["return_per_episode"]) >= 0.9:
            break
    algo.close()
    mean, returns = penv_mean_return(acmodel, preprocess_obss)
    assert mean >= 0.8, returns


# ------------------------------------------------------------------------------------------------ the contract
def test_a_user_preprocessor_gets_a_list_of_per_env_observations_and_the_starter_one_the_batch():
    seen = []

    def preprocess_obss(obss, device=None):
        seen.append(obss)
        return torch.tensor(np.array([obs for obs in obss]), device=device)

    with torch_rl.A2CAlgo(
        [FixedLengthEnv(length=2) for _ in range(3)],
        MLPModel(1, 2),
        num_frames_per_proc=4,
        preprocess_obss=preprocess_obss,
        num_workers=0,
    ) as algo:
        exps, _ = algo.collect_experiences()
    assert all(isinstance(obss, list) and len(obss) == 3 for obss in seen)
    assert exps.obs[:4, 0].tolist() == [0, 1, 0, 1]

    stacked = []

    def stacked_preprocess(obss, device=None):
        stacked.append(obss)
        return torch_rl.default_preprocess_obss(obss, device)

    stacked_preprocess.accepts_stacked_obs = True
    assert torch_rl.default_preprocess_obss.accepts_stacked_obs is True
    with torch_rl.A2CAlgo(
        [FixedLengthEnv() for _ in range(3)], MLPModel(1, 2), preprocess_obss=stacked_preprocess, num_workers=0
    ) as algo:
        algo.collect_experiences()
    assert all(isinstance(obss, np.ndarray) and obss.shape == (3, 1) for obss in stacked)


def test_a_list_preprocessor_gets_per_env_rows_of_a_batched_tensor_env():
    from torch_rl.envs import BatchedMiniGridEnv

    seen = []

    def preprocess_obss(obss, device=None):
        seen.append(obss)
        return list_preprocess_obss(obss, device)

    env = BatchedMiniGridEnv(ENV_ID, 3, seed=0)
    with torch_rl.PPOAlgo(
        env, ACModel({"image": (7, 7, 3)}, env.single_action_space), num_frames_per_proc=4, batch_size=4,
        preprocess_obss=preprocess_obss,
    ) as algo:  # fmt: skip
        exps, _ = algo.collect_experiences()
        algo.update_parameters(exps)
    assert all(isinstance(obss, list) and len(obss) == 3 for obss in seen)
    assert isinstance(seen[0][0]["mission"], str) and tuple(seen[0][0]["image"].shape) == (7, 7, 3)
    assert exps.obs.image.shape == (12, 7, 7, 3)


def test_episode_statistics_are_padded_to_num_procs_before_episodes_end_as_torch_ac_does():
    with torch_rl.A2CAlgo(
        [FixedLengthEnv(length=7) for _ in range(3)], MLPModel(1, 2), num_frames_per_proc=5, num_workers=0
    ) as algo:
        _, logs = algo.collect_experiences()  # no episode has ended yet
        assert logs["return_per_episode"] == [0, 0, 0] and logs["num_frames_per_episode"] == [0, 0, 0]
        assert logs["reshaped_return_per_episode"] == [0, 0, 0] and logs["num_padding_entries"] == 3
        assert min(logs["return_per_episode"]) == 0  # what crashed client code on an empty list
        _, logs = algo.collect_experiences()  # all three ended at step 7
        assert logs["return_per_episode"] == [7.0] * 3 and logs["num_padding_entries"] == 0


def test_update_parameters_takes_the_exps_of_collect_experiences_and_refuses_others():
    envs = [gym.make("CartPole-v1") for _ in range(2)]
    with (
        torch_rl.PPOAlgo(envs, MLPModel(4, 2), num_frames_per_proc=8, batch_size=8, num_workers=0) as algo,
        torch_rl.PPOAlgo(
            [gym.make("CartPole-v1") for _ in range(2)], MLPModel(4, 2), num_frames_per_proc=8, num_workers=0
        ) as other,
    ):
        exps, logs = algo.collect_experiences()
        before = [p.detach().clone() for p in algo.acmodel.parameters()]
        update_logs = algo.update_parameters(exps)
        assert not all(torch.equal(a, b) for a, b in zip(before, algo.acmodel.parameters(), strict=True))
        assert {"entropy", "policy_loss", "value_loss", "grad_norm"} <= set(update_logs)
        assert "return_per_episode" in logs and "return_per_episode" not in update_logs
        with pytest.raises(ValueError, match="rows"):
            algo.update_parameters(exps[:5])
        other_exps, _ = other.collect_experiences()
        with pytest.raises(ValueError, match="last collect_experiences"):
            algo.update_parameters(other_exps)
        with pytest.raises(ValueError, match="DictList"):
            algo.update_parameters(dict(exps))


@pytest.mark.parametrize("pass_exps", [False, True])
def test_recurrent_ppo_recomputes_memories_at_every_epoch_but_the_first_in_both_ways(pass_exps):
    calls = []

    class CountingPPO(torch_rl.PPOAlgo):
        def recompute_memories(self):
            calls.append(1)
            return super().recompute_memories()

    with CountingPPO(
        [gym.make("CartPole-v1") for _ in range(2)],
        RecurrentMLPModel(4, 2),
        num_frames_per_proc=8,
        recurrence=4,
        batch_size=8,
        epochs=3,
        num_workers=0,
    ) as algo:
        if pass_exps:
            exps, _ = algo.collect_experiences()
            algo.update_parameters(exps)
        else:
            algo.update_parameters()
    assert len(calls) == 2


def test_positional_arguments_keep_torch_ac_1_4_order():
    common = [
        "envs", "acmodel", "device", "num_frames_per_proc", "discount", "lr", "gae_lambda", "entropy_coef",
        "value_loss_coef", "max_grad_norm", "recurrence",
    ]  # fmt: skip
    ppo = list(inspect.signature(torch_rl.PPOAlgo).parameters)
    a2c = list(inspect.signature(torch_rl.A2CAlgo).parameters)
    ppo_extra = ["adam_eps", "clip_eps", "epochs", "batch_size", "preprocess_obss", "reshape_reward"]
    assert ppo[: len(common) + len(ppo_extra)] == common + ppo_extra
    a2c_extra = ["rmsprop_alpha", "rmsprop_eps", "preprocess_obss", "reshape_reward"]
    assert a2c[: len(common) + len(a2c_extra)] == common + a2c_extra


def test_penv_parallel_env_has_torch_ac_semantics_over_torch_rl_workers():
    from torch_rl.utils import ParallelEnv as FromPackage

    assert FromPackage is ParallelEnv
    for num_workers in (0, 2):
        with ParallelEnv([FixedLengthEnv(length=2) for _ in range(3)], num_workers=num_workers) as env:
            assert isinstance(env.env_batch, torch_rl.ParallelEnv)  # torch_rl's workers, not a second copy
            obss = env.reset()
            assert isinstance(obss, list) and [o.tolist() for o in obss] == [[0.0]] * 3
            obss, rewards, terminateds, truncateds, infos = env.step([0, 1, 0])
            assert [o.tolist() for o in obss] == [[1.0]] * 3 and rewards == [1.0] * 3
            assert terminateds == [False] * 3 and truncateds == [False] * 3 and infos == [{}, {}, {}]
            obss, rewards, terminateds, truncateds, infos = env.step(torch.tensor([1, 1, 0]))
            assert [o.tolist() for o in obss] == [[0.0]] * 3  # reset in the same step
            assert terminateds == [True] * 3 and [i["final_obs"].tolist() for i in infos] == [[2.0]] * 3
            with pytest.raises(ValueError, match="one action per env"):
                env.step([0])
