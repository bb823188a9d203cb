"""Minigrid's GoToObjectEnv and GoToDoorEnv (``minigrid/envs/gotoobject.py``, ``gotodoor.py``): objects, or four
doors, in a room; the mission names one. Layouts and missions from the bank; the named object's position at
reset (``target_pos``, never updated by Minigrid) is the task state. Rule (their ``step``): ``toggle`` ends the
episode; ``done`` ends it, with Minigrid's reward when the agent is beside that position (not diagonally)."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid.family import BankFamily

_TOGGLE, _DONE = 5, 6


class _GoToFamily(BankFamily):
    num_task_positions = 1

    def task_positions_from_minigrid(self, env) -> list[tuple[int, int]]:
        return [tuple(int(v) for v in env.target_pos)]

    def after_step(self, env, actions, context, reward, terminated):
        offset = (env.agent - env.task[:, 0]).abs()
        beside = (offset == 1) | (offset == env.Wp)
        done = actions == _DONE
        reward = torch.where(done & beside, env.success_reward(), reward)
        return reward, terminated | done | (actions == _TOGGLE)


class GoToObjectFamily(_GoToFamily):
    minigrid_class = "minigrid.envs.gotoobject:GoToObjectEnv"


class GoToDoorFamily(_GoToFamily):
    minigrid_class = "minigrid.envs.gotodoor:GoToDoorEnv"
