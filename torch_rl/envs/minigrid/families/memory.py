"""Minigrid's MemoryEnv (``minigrid/envs/memory.py``): an object in the start room, a hallway, and two objects at
its end; reaching the cell next to the matching one succeeds, next to the other one fails.

Rule (MemoryEnv.step): pickup acts as toggle; standing on ``success_pos`` ends the episode with Minigrid's
reward, on ``failure_pos`` with 0. Layouts from the bank, with both positions as task state."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid.family import Family

_PICKUP, _TOGGLE = 3, 5


class MemoryFamily(Family):
    num_task_positions = 2  # success_pos, failure_pos

    def __init__(self, size: int = 8, random_length: bool = False, max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 5 * size**2 if max_steps is None else max_steps
        self.mission = "go to the matching object at the end of the hallway"

    def task_positions_from_minigrid(self, env) -> list[tuple[int, int]]:
        return [tuple(env.success_pos), tuple(env.failure_pos)]

    def map_actions(self, env, actions: torch.Tensor) -> torch.Tensor:
        return torch.where(actions == _PICKUP, _TOGGLE, actions)

    def after_step(self, env, actions, context, reward, terminated):
        success = env.agent == env.task[:, 0]
        failure = env.agent == env.task[:, 1]
        reward = torch.where(success, env.success_reward(), reward)
        reward = torch.where(failure, 0.0, reward)
        return reward, terminated | success | failure
