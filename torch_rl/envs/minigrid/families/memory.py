"""Minigrid's MemoryEnv (``minigrid/envs/memory.py``): an object in the start room, a hallway, and two objects at
its end; reaching the cell next to the matching one succeeds, next to the other one fails.

Rule (MemoryEnv.step): pickup acts as toggle; standing on ``success_pos`` ends the episode with Minigrid's
reward, on ``failure_pos`` with 0. Native tensor generator following ``_gen_grid`` (hallway length when
``random_length``, the agent's place along the hallway, the cue object, the order of the two objects at the end);
both positions are the task state."""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Family, Layouts
from torch_rl.envs.minigrid.view import PAD

_PICKUP, _TOGGLE = 3, 5
_KEY, _BALL = C.C_KEY0 + C.COLOR_IDX["green"], C.C_BALL0 + C.COLOR_IDX["green"]


class MemoryFamily(Family):
    num_task_positions = 2  # success_pos, failure_pos
    native = True

    def __init__(self, size: int = 8, random_length: bool = False, max_steps: int | None = None):
        self.width = self.height = size
        self.max_steps = 5 * size**2 if max_steps is None else max_steps
        self.mission = "go to the matching object at the end of the hallway"
        self.random_length = random_length

    def generate(self, env, m: int) -> Layouts:
        W, H, dev = self.width, self.height, env.device
        mid, upper, lower = H // 2, H // 2 - 2, H // 2 + 2
        if self.random_length:
            end = env.randint(m, 4, W - 2)
        else:
            end = torch.full((m,), W - 3, dtype=torch.int64, device=dev)
        x = torch.arange(W, device=dev).view(1, 1, W)
        y = torch.arange(H, device=dev).view(1, H, 1)
        e = end.view(m, 1, 1)
        beside_hallway = (y == upper + 1) | (y == lower - 1)
        walls = (
            (((y == upper) | (y == lower)) & (x >= 1) & (x <= 4))  # the start room
            | (beside_hallway & (x == 4))
            | (beside_hallway & (x >= 5) & (x < e))  # the horizontal hallway
            | ((x == e) & (y != mid))  # the vertical hallway
            | (x == e + 2)
        )
        grid = env.blank_grids(m)
        env.grid_view(grid)[:, PAD : PAD + H, PAD : PAD + W].masked_fill_(walls, C.C_WALL)
        agent = env.flat(env.randint(m, 1, end + 1), mid)
        cue_is_key = env.randint(m, 0, 2) == 0  # _rand_elem([Key, Ball])
        upper_is_ball = env.randint(m, 0, 2) == 0  # _rand_elem([[Ball, Key], [Key, Ball]])
        grid[:, env.flat(1, mid - 1)] = torch.where(cue_is_key, _KEY, _BALL).to(torch.uint8)
        grid.scatter_(
            1, env.flat(end + 1, upper).view(m, 1), torch.where(upper_is_ball, _BALL, _KEY).view(m, 1).to(torch.uint8)
        )
        grid.scatter_(
            1, env.flat(end + 1, lower).view(m, 1), torch.where(upper_is_ball, _KEY, _BALL).view(m, 1).to(torch.uint8)
        )
        upper_matches = cue_is_key != upper_is_ball
        above, below = env.flat(end + 1, upper + 1), env.flat(end + 1, lower - 1)
        success = torch.where(upper_matches, above, below)
        failure = torch.where(upper_matches, below, above)
        d = torch.zeros(m, dtype=torch.int64, device=dev)
        return Layouts(grid, agent, d, torch.stack([success, failure], 1))

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
