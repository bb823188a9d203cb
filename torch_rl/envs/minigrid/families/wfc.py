"""Minigrid's WFCEnv (``minigrid/envs/wfc/wfcenv.py``): a 25x25 level drawn by Wave Function Collapse from a
pattern image (walls and open cells), kept to its largest connected area, the agent and the goal on two random
open cells. Minigrid's default step (the goal ends the episode with ``1 - 0.9 * t / T``).

Layouts from the bank: the solver makes 0.5 to 8 layouts per second on one core, so the bank starts from few
layouts and keeps them in its cache (``layout_cache.py``; fill it ahead with ``python -m
torch_rl.envs.minigrid.prepare``)."""

from __future__ import annotations

from torch_rl.envs.minigrid.family import BankFamily


class WFCFamily(BankFamily):
    minigrid_class = "minigrid.envs.wfc:WFCEnv"
    # ~1 layout per second: waiting for the usual 1,024 layouts (chunks of 256) would take many minutes
    bank_defaults = {"initial": 16, "chunk": 4}
    slow_layouts = True
