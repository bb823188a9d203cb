"""torch_rl.rollout.Rollout on its own: the (T, N) storage, its advantages, flattening, mini-batches and episodes."""

import gymnasium as gym
import torch

import torch_rl
from tests.models import MLPModel
from torch_rl.batching import flatten_steps, stack_steps
from torch_rl.dictlist import DictList
from torch_rl.gae import compute_gae
from torch_rl.rollout import Rollout, sequence_rows

T, N = 4, 3


def filled_rollout(memory_size=None, ends=()):
    """A rollout where step t of env i has obs/value 10*i + t, reward 1, and episodes end at ``ends`` (t, i)."""
    rollout = Rollout(T, N, torch.device("cpu"), memory_size)
    for t in range(T):
        ids = torch.tensor([10.0 * i + t for i in range(N)])
        done = torch.tensor([(t, i) in ends for i in range(N)])
        rollout.add_step(
            t,
            obs=ids.unsqueeze(1),
            action=torch.arange(N) + t,
            value=ids,
            log_prob=-ids,
            mask=torch.ones(N),
            memory=None if memory_size is None else ids.unsqueeze(1).expand(N, memory_size),
            reward=torch.ones(N),
            reshaped_reward=2 * torch.ones(N),
            terminated=done,
            truncated=torch.zeros(N, dtype=torch.bool),
            final_value=torch.zeros(N),
        )
    return rollout


def test_flattened_rows_are_env_major_and_in_time_order():
    rollout = filled_rollout(memory_size=2)
    advantages, returns = rollout.advantages(torch.zeros(N), 0.9, 0.95)
    exps = rollout.flatten(rollout.rewards, advantages, returns)
    expected = [10.0 * i + t for i in range(N) for t in range(T)]
    assert exps.obs[:, 0].tolist() == expected and exps.value.tolist() == expected
    assert exps.log_prob.tolist() == [-x for x in expected]
    assert exps.action.tolist() == [i + t for i in range(N) for t in range(T)]
    assert exps.memory[:, 1].tolist() == expected and exps.mask.tolist() == [1.0] * (T * N)
    assert rollout.start_memory[:, 0].tolist() == [0.0, 10.0, 20.0]
    assert rollout.time_major_obs()[:, 0].tolist() == [10.0 * i + t for t in range(T) for i in range(N)]
    assert "memory" not in filled_rollout().flatten(rollout.rewards, advantages, returns)


def test_steps_of_different_widths_are_padded_in_either_order():
    # tokens padded per step: step t is (N, t + 1) wide, value 10 * i + t; zero-padded to the widest
    steps = [torch.tensor([[10.0 * i + t] * (t + 1) for i in range(N)]) for t in range(T)]
    time_major, env_major = stack_steps(steps), stack_steps(steps, env_major=True)
    assert time_major.shape == (T, N, T) and env_major.shape == (N, T, T)
    assert torch.equal(env_major, time_major.transpose(0, 1))
    assert env_major[2, 1].tolist() == [21.0, 21.0, 0.0, 0.0]
    rows = flatten_steps(DictList(tokens=env_major), transpose=False).tokens
    assert rows[:, 0].tolist() == [10.0 * i + t for i in range(N) for t in range(T)]


def test_advantages_are_gae_of_the_stored_steps_or_of_given_rewards():
    rollout = filled_rollout(ends={(1, 0)})
    last = torch.tensor([5.0, 6.0, 7.0])
    advantages, returns = rollout.advantages(last, 0.9, 0.95)
    terminated = torch.zeros(T, N, dtype=torch.bool)
    terminated[1, 0] = True
    expected = compute_gae(
        2 * torch.ones(T, N),
        rollout.values,
        last,
        terminated,
        torch.zeros_like(terminated),
        torch.zeros(T, N),
        0.9,
        0.95,
    )
    torch.testing.assert_close(advantages, expected[0])
    torch.testing.assert_close(returns, expected[1])
    scaled, _ = rollout.advantages(last, 0.9, 0.95, rewards=torch.zeros(T, N))
    assert not torch.allclose(scaled, advantages)


def test_mini_batches_cover_every_sequence_start_once_and_rows_are_time_major():
    rollout = filled_rollout()
    assert rollout.sequence_starts(2).tolist() == [0, 2, 4, 6, 8, 10]
    batches = rollout.shuffled_batches(recurrence=2, batch_size=4)
    assert [len(b) for b in batches] == [2, 2, 2]
    assert sorted(torch.cat(batches).tolist()) == [0, 2, 4, 6, 8, 10]
    assert sequence_rows(torch.tensor([4, 0]), 2).tolist() == [4, 0, 5, 1]


def test_episode_statistics_report_ended_episodes_in_the_order_they_ended():
    rollout = filled_rollout(ends={(1, 0), (2, 2), (3, 0)})
    logs = rollout.episode_logs()
    assert logs["num_episodes"] == 3 and logs["num_frames"] == T * N and logs["num_padding_entries"] == 0
    assert logs["return_per_episode"] == [2.0, 3.0, 2.0]  # env 0 at step 1, env 2 at step 2, env 0 again at step 3
    assert logs["reshaped_return_per_episode"] == [4.0, 6.0, 4.0]
    assert logs["num_frames_per_episode"] == [2, 3, 2]


def test_an_algorithm_learns_from_its_env_batch_whether_actions_go_as_tensors():
    from torch_rl.envs import BatchedMiniGridEnv
    from torch_rl.vec_env import VectorEnvBatch

    assert VectorEnvBatch(BatchedMiniGridEnv("MiniGrid-DoorKey-5x5-v0", 2)).accepts_torch_actions
    vector = gym.vector.SyncVectorEnv(
        [lambda: gym.make("CartPole-v1")], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
    )
    assert not VectorEnvBatch(vector).accepts_torch_actions
    with torch_rl.A2CAlgo([gym.make("CartPole-v1")], MLPModel(4, 2), num_workers=0) as algo:
        assert not algo.env.accepts_torch_actions
