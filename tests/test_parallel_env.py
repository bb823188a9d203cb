"""ParallelEnv with worker processes returns exactly what stepping the same envs in-process returns.

The workers send observations through shared memory and numbers as lists (torch_rl.shared_obs); these tests
pin that this transport changes nothing, including its fallback for observations that do not match their space.
"""

import multiprocessing as mp
import os
import signal
import time

import gymnasium as gym
import numpy as np
import pytest

import torch_rl
from tests.envs import FixedLengthEnv, RaisingEnv, SecondShapeEnv, SleepingEnv
from utils.env import make_envs


def _assert_same_obs(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same_obs(a[key], b[key])
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    else:  # lists of missions, numbers and strings in a single env's final observation
        assert type(a) is type(b) and a == b


def _run_side_by_side(make, num_envs, workers, steps, actions):
    local = torch_rl.ParallelEnv(make(), num_workers=0)
    remote = torch_rl.ParallelEnv(make(), num_workers=workers)
    try:
        _assert_same_obs(local.reset(seed=3), remote.reset(seed=3))
        ended = 0
        for t in range(steps):
            a = actions(t)
            la, ra = local.step(a), remote.step(a)
            _assert_same_obs(la[0], ra[0])
            for x, y in zip(la[1:4], ra[1:4], strict=True):
                assert x.dtype == y.dtype
                np.testing.assert_array_equal(x, y)
            assert la[4].keys() == ra[4].keys()
            for i in la[4]:
                _assert_same_obs(la[4][i], ra[4][i])
            ended += len(la[4])
        return remote, ended
    finally:
        local.close()
        remote.close()


def test_minigrid_through_workers_matches_in_process_stepping():
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 7, size=(400, 6))
    remote, ended = _run_side_by_side(
        lambda: make_envs("MiniGrid-DoorKey-5x5-v0", 6, seed=1), 6, 3, 400, lambda t: actions[t]
    )
    assert ended > 0  # autoresets happened and their final observations matched too
    assert set(remote.shared.arrays) == {"image", "direction"}  # the shared-memory path was the one used


def test_plain_array_observations_and_box_actions_through_workers():
    rng = np.random.default_rng(1)
    actions = rng.uniform(-2, 2, size=(250, 4, 1)).astype(np.float32)
    remote, ended = _run_side_by_side(
        lambda: [gym.make("Pendulum-v1") for _ in range(4)], 4, 2, 250, lambda t: actions[t]
    )
    assert ended == 4  # Pendulum truncates at 200 steps
    assert set(remote.shared.arrays) == {None}


class MismatchedObsEnv(gym.Env):
    """Declares float32 observations of shape (3,) but returns float64 ones of shape (2,)."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, float(self.np_random.integers(10))]), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t, float(action)]), 1.0, self.t >= 5, False, {}


def test_observations_that_do_not_match_their_space_still_arrive_through_the_pipe():
    remote, ended = _run_side_by_side(
        lambda: [MismatchedObsEnv() for _ in range(3)], 3, 3, 12, lambda t: np.full(3, t % 2)
    )
    assert ended == 6


# ---------------------------------------------------------------------------------- worker faults (library)
def _assert_workers_gone(env):
    for process in env.processes:
        process.join(timeout=5)
        assert not process.is_alive()
    assert not set(env.processes) & set(mp.active_children())


def test_an_env_raising_in_a_worker_is_an_env_worker_error_naming_the_env():
    env = torch_rl.ParallelEnv([FixedLengthEnv(length=1000), RaisingEnv(after=3)], num_workers=2)
    try:
        env.reset(seed=0)
        for _ in range(3):
            env.step(np.zeros(2, np.int64))
        start = time.time()
        with pytest.raises(torch_rl.EnvWorkerError, match=r"env 1 .*boom from RaisingEnv"):
            env.step(np.zeros(2, np.int64))
        assert time.time() - start < 5
        _assert_workers_gone(env)
    finally:
        env.close()


def test_any_exception_in_a_worker_is_an_env_worker_error():
    env = torch_rl.ParallelEnv([FixedLengthEnv(), SecondShapeEnv()], num_workers=1)
    try:
        with pytest.raises(torch_rl.EnvWorkerError, match=r"envs 0\.\.1 failed in reset: ValueError"):
            env.reset(seed=0)
        _assert_workers_gone(env)
    finally:
        env.close()


def test_a_killed_worker_is_an_env_worker_error_not_a_hang():
    env = torch_rl.ParallelEnv([FixedLengthEnv(length=1000) for _ in range(4)], num_workers=2)
    try:
        env.reset(seed=0)
        os.kill(env.processes[1].pid, signal.SIGKILL)
        env.processes[1].join(timeout=5)
        start = time.time()
        with pytest.raises(torch_rl.EnvWorkerError, match=r"worker 1 \(envs 2\.\.3\) died"):
            env.step(np.zeros(4, np.int64))
        assert time.time() - start < 5
        _assert_workers_gone(env)
    finally:
        env.close()


def test_a_stuck_worker_times_out_and_is_stopped():
    env = torch_rl.ParallelEnv([FixedLengthEnv(), SleepingEnv()], num_workers=2, timeout=1.0)
    try:
        env.reset(seed=0)
        start = time.time()
        with pytest.raises(torch_rl.EnvWorkerError, match=r"worker 1 .*did not answer"):
            env.step(np.zeros(2, np.int64))
        assert time.time() - start < 5
        _assert_workers_gone(env)
    finally:
        env.close()


def test_negative_num_workers_is_refused():
    with pytest.raises(ValueError, match="num_workers"):
        torch_rl.ParallelEnv([FixedLengthEnv()], num_workers=-1)
