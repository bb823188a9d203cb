"""The smallest memory task: what was seen at the first step decides the last action.

MiniGrid's Memory envs test memory too, but there the agent must first learn to turn around to see the cue
(it starts facing away in 3 starts out of 4), so a policy can fail them for lack of exploration as much as
for lack of memory. Here the cue is always seen, so the task measures memory alone:

- step 0: the agent sees a key or a ball beside it (the cue, MiniGrid's encoding, chosen at random);
- steps 1..delay: a blank corridor, the same observation whatever the cue; any action walks on;
- then a junction, also the same for both cues: action 0 (for a key) or 1 (for a ball) ends the episode with
  reward 1 if it matches the cue, else 0 (action 2, or any other, is a wrong choice).

With ``swap_sides=True`` the junction shows a key and a ball on its two sides, in random order, and action 0
(left) or 1 (right) picks a side: the policy must combine what it remembers with what it sees (cue XOR
layout), as in MiniGrid's Memory envs at the end of the hallway.

Without memory a policy cannot beat a success rate of 0.5. Observations are MiniGrid-like (a ``7x7x3`` uint8
``image``), so the starter model runs on it unchanged: ``--env torch_rl/CueCorridor-v0 --recurrence 8``.
"""

import gymnasium as gym
import numpy as np

EMPTY, WALL, KEY, BALL, GOAL = 1, 2, 5, 6, 8  # MiniGrid object indices


class CueCorridorEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, delay=6, swap_sides=False, render_mode=None):
        if render_mode is not None:
            raise ValueError("CueCorridorEnv draws nothing (no render mode): use scripts.evaluate to watch its numbers")
        if delay < 1:
            raise ValueError(f"delay must be at least 1, got {delay}")
        self.delay = delay
        self.swap_sides = swap_sides
        self.key_on_left = True
        self.observation_space = gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (7, 7, 3), np.uint8)})
        self.action_space = gym.spaces.Discrete(3)
        self.cue = 0
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.cue = int(self.np_random.integers(2))  # 0: key, 1: ball
        self.key_on_left = not self.swap_sides or bool(self.np_random.integers(2))
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        if self.t < self.delay:
            self.t += 1
            return self._obs(), 0.0, False, False, {}
        reward = 1.0 if int(action) == self._right_choice() else 0.0
        return self._obs(), reward, True, False, {}

    def _right_choice(self):
        if self.swap_sides:  # the side (0: left, 1: right) where the cue's object lies
            return 0 if (self.cue == 0) == self.key_on_left else 1
        return self.cue

    def _obs(self):
        image = np.zeros((7, 7, 3), np.uint8)
        image[:, :, 0] = WALL
        image[3, :, 0] = EMPTY  # the corridor ahead of the agent (bottom centre, facing up)
        if self.t == 0:
            image[2, 6, 0] = KEY if self.cue == 0 else BALL  # beside the agent
        if self.t == self.delay and self.swap_sides:  # the junction: a key and a ball, one on each side
            image[2, 5, 0], image[4, 5, 0] = (KEY, BALL) if self.key_on_left else (BALL, KEY)
        elif self.t == self.delay:  # the junction's two ways, identical for both cues
            image[2, 5, 0] = image[4, 5, 0] = GOAL
        return {"image": image}
