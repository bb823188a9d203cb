"""Tiny Gymnasium envs whose behaviour the tests know exactly."""

import time

import gymnasium as gym
import numpy as np


class FixedLengthEnv(gym.Env):
    """Observation = [step within episode]; the episode terminates (or is truncated) after `length` steps."""

    def __init__(self, length=3, truncate=False, reward=1.0):
        self.length, self.truncate, self.reward = length, truncate, reward
        self.observation_space = gym.spaces.Box(0, 100, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        end = self.t >= self.length
        return np.array([self.t], np.float32), self.reward, end and not self.truncate, end and self.truncate, {}


class ActionCheckingEnv(gym.Wrapper):
    """Fails if the action does not have the action space's shape and dtype."""

    def step(self, action):
        space = self.env.action_space
        assert isinstance(action, np.ndarray), type(action)
        assert action.shape == space.shape and action.dtype == space.dtype, (action.shape, action.dtype)
        assert space.contains(action)
        return self.env.step(action)


class RaisingEnv(FixedLengthEnv):
    """Raises in step after `after` steps."""

    def __init__(self, after=5):
        super().__init__(length=1000)
        self.after, self.count = after, 0

    def step(self, action):
        self.count += 1
        if self.count > self.after:
            raise RuntimeError("boom from RaisingEnv")
        return super().step(action)


# ----------------------------------------------------- faults and oddities (registered as TorchRLTest-* ids)
class RaisingStepEnv(RaisingEnv):
    def __init__(self, after=5, render_mode=None):
        super().__init__(after)


class FaultAfterEnv(FixedLengthEnv):
    """Behaves for ``after`` steps (counted over episodes), then every step goes through ``fault``."""

    def __init__(self, after=0, render_mode=None):
        super().__init__(length=10)
        self.after, self.count = after, 0

    def step(self, action):
        self.count += 1
        result = super().step(action)
        return self.fault(*result) if self.count > self.after else result


class NaNRewardEnv(FaultAfterEnv):
    """Reward 1, then NaN."""

    def fault(self, obs, reward, terminated, truncated, info):
        return obs, float("nan"), terminated, truncated, info


class NaNObservationEnv(FaultAfterEnv):
    """Observations [t], then [NaN]."""

    def fault(self, obs, reward, terminated, truncated, info):
        return np.array([np.nan], np.float32), reward, terminated, truncated, info


class SecondShapeEnv(FixedLengthEnv):
    """Observations of shape (2,) where its space says (1,): it cannot be stacked with a FixedLengthEnv's."""

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}


class SleepingEnv(FixedLengthEnv):
    def step(self, action):
        time.sleep(60)
        return super().step(action)


class HangingEnv(FixedLengthEnv):
    """Steps normally ``after`` times, then hangs in step (sleeps far longer than any test waits)."""

    def __init__(self, after=40, render_mode=None):
        super().__init__(length=10)
        self.after, self.count = after, 0

    def step(self, action):
        self.count += 1
        if self.count > self.after:
            time.sleep(3600)
        return super().step(action)


class SlowEnv(FixedLengthEnv):
    """Each step takes 50 ms, so that a signal almost surely finds the process inside one."""

    def step(self, action):
        time.sleep(0.05)
        return super().step(action)


class NaNRewardAtOnceEnv(FixedLengthEnv):
    """A NaN reward from the first step: training diverges in update 1, before any checkpoint."""

    def __init__(self, render_mode=None):
        super().__init__(length=5, reward=float("nan"))


class NoRenderModeEnv(FixedLengthEnv):
    """A constructor without render_mode, which gym.make(id) accepts."""

    def __init__(self):
        super().__init__(length=5)


class ShapeChangingEnv(FixedLengthEnv):
    """Observations of shape (1,), then (3,) at the 7th step."""

    def __init__(self, render_mode=None):
        super().__init__(length=5)
        self.count = 0

    def step(self, action):
        self.count += 1
        obs, *rest = super().step(action)
        return (np.zeros(3, np.float32) if self.count == 7 else obs), *rest


class StringObservationEnv(FixedLengthEnv):
    """A string where its Box space says (1,)."""

    def step(self, action):
        _, *rest = super().step(action)
        return "a string", *rest
