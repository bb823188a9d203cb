"""Tiny Gymnasium envs whose behaviour the tests know exactly."""

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
