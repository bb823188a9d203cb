"""Minigrid's PlaygroundEnv (``minigrid/envs/playground.py``): nine rooms joined by doors, twelve random objects,
no mission (the empty string) and no reward. Layouts from the bank; Minigrid's default step."""

from __future__ import annotations

from torch_rl.envs.minigrid.family import BankFamily


class PlaygroundFamily(BankFamily):
    minigrid_class = "minigrid.envs.playground:PlaygroundEnv"
