"""Minigrid's RedBlueDoorEnv (``minigrid/envs/redbluedoors.py``): a room with a red door on its left wall and a
blue one on its right. Layouts from the bank; the two doors' positions are the task state. Rule
(RedBlueDoorEnv.step): when the blue door is open after a step, the episode ends, with Minigrid's reward when the
red one was open before the step, else 0; when only the red one is open after a step and the blue one was open
before it, the episode ends with 0."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import BankFamily, position_of


def _open(env) -> torch.Tensor:
    """(B, 2) whether the red and the blue door are open."""
    doors = torch.gather(env.grid, 1, env.task)
    return (doors >= C.C_DOOR_OPEN0) & (doors < C.C_DOOR_OPEN0 + C.N_COLORS)


class RedBlueDoorsFamily(BankFamily):
    minigrid_class = "minigrid.envs.redbluedoors:RedBlueDoorEnv"
    num_task_positions = 2  # red door, blue door

    def task_positions_from_minigrid(self, env) -> list[tuple[int, int]]:
        return [position_of(env, env.red_door), position_of(env, env.blue_door)]

    def before_step(self, env, actions):
        return _open(env)

    def after_step(self, env, actions, before, reward, terminated):
        after = _open(env)
        blue_now = after[:, 1]
        red_first = blue_now & before[:, 0]
        wrong = (blue_now & ~before[:, 0]) | (~blue_now & after[:, 0] & before[:, 1])
        reward = torch.where(red_first, env.success_reward(), torch.where(wrong, 0.0, reward))
        return reward, terminated | blue_now | wrong
