"""Minigrid's FetchEnv (``minigrid/envs/fetch.py``): keys and balls in a room; the mission names one by colour
and type. Layouts and missions from the bank. Rule (FetchEnv.step): after any step in which the agent carries
something, the episode ends, with Minigrid's reward when it is of the mission's colour and type, else 0."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import BankFamily


class FetchFamily(BankFamily):
    minigrid_class = "minigrid.envs.fetch:FetchEnv"
    num_mission_codes = 1  # the object to fetch

    def mission_codes(self, mission: str) -> list[int]:
        color, obj_type = mission.split()[-2:]  # "... a {color} {type}"
        return [C.object_code(obj_type, color)]

    def after_step(self, env, actions, context, reward, terminated):
        carrying = env.carry != C.C_EMPTY
        right = env.carry == env.task_codes[:, 0]
        reward = torch.where(carrying, torch.where(right, env.success_reward(), 0.0), reward)
        return reward, terminated | carrying
