"""The rule shared by Minigrid's families whose mission is to pick up one object (KeyCorridor, UnlockPickup,
BlockedUnlockPickup, ObstructedMaze): ``pickup`` that leaves the agent carrying that very object (``self.carrying
== self.obj``) ends the episode with Minigrid's reward.

The object is followed by its position (the task state): it cannot move before it is picked up, and picking it
up ends the episode. Only a box can leave its cell otherwise (toggled, it is replaced by its contents): then the
position is cleared, so nothing dropped there later counts as the object."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import BankFamily

_PICKUP, _TOGGLE = 3, 5
_NOWHERE = 0  # a padding cell no agent ever faces


class PickupTargetFamily(BankFamily):
    num_task_positions = 1  # the object's cell

    def task_positions_from_minigrid(self, env) -> list[tuple[int, int]]:
        return [tuple(int(v) for v in env.obj.cur_pos)]

    def before_step(self, env, actions):
        return env.front(), env.front_code(), env.carry

    def after_step(self, env, actions, context, reward, terminated):
        front, front_code, carry = context
        at_target = front == env.task[:, 0]
        success = (actions == _PICKUP) & (carry == C.C_EMPTY) & at_target
        opened = (actions == _TOGGLE) & at_target & (front_code >= C.C_BOX0) & (front_code < C.C_BOX0 + C.N_COLORS)
        env.task[:, 0] = torch.where(opened, _NOWHERE, env.task[:, 0])
        return torch.where(success, env.success_reward(), reward), terminated | success
