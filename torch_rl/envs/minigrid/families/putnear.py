"""Minigrid's PutNearEnv (``minigrid/envs/putnear.py``): objects in a room; the mission names one to move and
one to put it near. Layouts and missions from the bank; the second object's position at reset (``target_pos``)
is the task state, the object to move is named by the mission (colour and type). Rule (PutNearEnv.step):
``pickup`` after which the agent carries anything but the object to move ends the episode (reward 0); ``drop``
while carrying ends it, with Minigrid's reward when the object landed in one of the 8 cells around (or on) the
target position."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import BankFamily

_PICKUP, _DROP = 3, 4


class PutNearFamily(BankFamily):
    minigrid_class = "minigrid.envs.putnear:PutNearEnv"
    num_task_positions = 1  # target_pos
    num_mission_codes = 1  # the object to move

    def task_positions_from_minigrid(self, env) -> list[tuple[int, int]]:
        return [tuple(int(v) for v in env.target_pos)]

    def mission_codes(self, mission: str) -> list[int]:
        words = mission.split()  # "put the {color} {type} near the {color} {type}"
        return [C.object_code(words[3], words[2])]

    def before_step(self, env, actions):
        return env.carry

    def after_step(self, env, actions, carried, reward, terminated):
        wrong = (actions == _PICKUP) & (env.carry != C.C_EMPTY) & (env.carry != env.task_codes[:, 0])
        drop = (actions == _DROP) & (carried != C.C_EMPTY)
        front, target = env.front(), env.task[:, 0]
        near = ((front % env.Wp - target % env.Wp).abs() <= 1) & ((front // env.Wp - target // env.Wp).abs() <= 1)
        dropped_near = drop & (env.carry == C.C_EMPTY) & near
        return torch.where(dropped_near, env.success_reward(), reward), terminated | wrong | drop
