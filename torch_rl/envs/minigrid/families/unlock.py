"""Minigrid's UnlockEnv (``minigrid/envs/unlock.py``): two rooms, a locked door, its key in the agent's room.
Layouts from the bank. Rule (UnlockEnv.step): ``toggle`` after which the door is open succeeds; the door's
position is the task state."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import BankFamily

_TOGGLE = 5


class UnlockFamily(BankFamily):
    minigrid_class = "minigrid.envs.unlock:UnlockEnv"
    num_task_positions = 1  # the door

    def task_positions_from_minigrid(self, env) -> list[tuple[int, int]]:
        return [tuple(int(v) for v in env.door.cur_pos)]

    def after_step(self, env, actions, context, reward, terminated):
        door = torch.gather(env.grid, 1, env.task[:, :1]).view(-1)
        is_open = (door >= C.C_DOOR_OPEN0) & (door < C.C_DOOR_OPEN0 + C.N_COLORS)
        success = (actions == _TOGGLE) & is_open
        return torch.where(success, env.success_reward(), reward), terminated | success
