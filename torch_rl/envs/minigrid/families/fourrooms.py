"""Minigrid's FourRoomsEnv (``minigrid/envs/fourrooms.py``): four rooms joined by gaps at random places, the agent
and the goal anywhere. Layouts from the bank; Minigrid's default step."""

from __future__ import annotations

from torch_rl.envs.minigrid.family import Family


class FourRoomsFamily(Family):
    def __init__(self, agent_pos=None, goal_pos=None, max_steps: int = 100):
        self.width = self.height = 19
        self.max_steps = max_steps
        self.mission = "reach the goal"
