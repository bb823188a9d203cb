"""Minigrid's DynamicObstaclesEnv (``minigrid/envs/dynamicobstacles.py``): blue balls that move every step in an
empty room with the goal in the bottom-right corner; three actions (left, right, forward).

Rule (DynamicObstaclesEnv.step): an action >= 3 is ``left``; before the agent acts, each ball in turn moves to a
cell drawn uniformly among the free cells (empty, not the agent's) of the 3x3 square around it, or stays when
there is none (Minigrid draws up to 101 times and gives up: with a free cell that fails with probability at
most (8/9)**101 < 1e-5, which the engine ignores); moving forward when the cell in front held anything but the
goal before the balls moved gives reward -1 and ends the episode. The balls' positions are the task state;
their moves are random (tested statistically), everything else exact. Native tensor generator: the agent at
its start (or, for the Random ids, on a uniform empty cell facing anywhere), then each ball in turn on a
uniform empty cell that is not the agent's.
"""

from __future__ import annotations

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.family import Family, Layouts

_LEFT, _FORWARD = 0, 2
_BALL = C.C_BALL0 + C.COLOR_IDX["blue"]


class DynamicObstaclesFamily(Family):
    num_actions = 3
    see_through_walls = True
    native = True

    def __init__(
        self,
        size: int = 8,
        agent_start_pos=(1, 1),
        agent_start_dir: int = 0,
        n_obstacles: int = 4,
        max_steps: int | None = None,
    ):
        self.width = self.height = size
        self.max_steps = 4 * size**2 if max_steps is None else max_steps
        self.mission = "get to the green goal square"
        self.num_task_positions = int(n_obstacles) if n_obstacles <= size / 2 + 1 else int(size / 2)
        self.start_pos, self.start_dir = agent_start_pos, agent_start_dir
        # Tests set this to a (B, K) tensor of the balls' next positions to follow a real env's random moves.
        self.forced_moves: torch.Tensor | None = None
        self._window_offsets: torch.Tensor | None = None

    def generate(self, env, m: int) -> Layouts:
        n = self.width
        grid = env.blank_grids(m)
        grid[:, env.flat(n - 2, n - 2)] = C.C_GOAL
        if self.start_pos is None:  # place_agent()
            agent = env.choose_cells(grid == C.C_EMPTY)
            d = env.randint(m, 0, 4)
        else:
            agent = env.flat(*self.start_pos).expand(m).clone()
            d = torch.full((m,), self.start_dir, dtype=torch.int64, device=env.device)
        balls = []
        for _ in range(self.num_task_positions):
            free = grid == C.C_EMPTY
            free.scatter_(1, agent.view(m, 1), False)
            ball = env.choose_cells(free)
            grid.scatter_(1, ball.view(m, 1), _BALL)
            balls.append(ball)
        return Layouts(grid, agent, d, torch.stack(balls, 1))

    def task_positions_from_minigrid(self, env) -> list[tuple[int, int]]:
        return [tuple(int(v) for v in ball.cur_pos) for ball in env.obstacles]

    def map_actions(self, env, actions: torch.Tensor) -> torch.Tensor:
        return torch.where(actions >= self.num_actions, _LEFT, actions)

    def _window(self, env) -> torch.Tensor:
        """Flat offsets of the 3x3 square around a cell (made once: no host-to-device copy per step; each env
        has its own family object)."""
        if self._window_offsets is None:
            offsets = [dx + dy * env.Wp for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
            self._window_offsets = torch.tensor(offsets, dtype=torch.int64, device=env.device)
        return self._window_offsets

    def before_step(self, env, actions):
        grid = env.grid
        front_code = torch.gather(grid, 1, env.front().unsqueeze(1)).squeeze(1)
        not_clear = (front_code != C.C_EMPTY) & (front_code != C.C_GOAL)
        window = self._window(env)
        for k in range(self.num_task_positions):
            old = env.task[:, k]
            if self.forced_moves is not None:
                new = self.forced_moves[:, k].to(env.device)
            else:
                cells = old.unsqueeze(1) + window  # (B, 9)
                free = (torch.gather(grid, 1, cells) == C.C_EMPTY) & (cells != env.agent.unsqueeze(1))
                count = free.sum(1)
                u = torch.rand(count.shape[0], generator=env.generator, device=env.device, dtype=torch.float64)
                pick = (u * count).long()  # the pick-th free cell (0-based)
                chosen = (free.cumsum(1) == (pick + 1).unsqueeze(1)) & free
                new = torch.where(count > 0, cells.gather(1, chosen.long().argmax(1, keepdim=True)).squeeze(1), old)
            grid.scatter_(1, old.unsqueeze(1), C.C_EMPTY)
            grid.scatter_(1, new.unsqueeze(1), _BALL)
            env.task[:, k] = new
        return not_clear

    def after_step(self, env, actions, not_clear, reward, terminated):
        hit = (actions == _FORWARD) & not_clear
        return torch.where(hit, -1.0, reward), terminated | hit
