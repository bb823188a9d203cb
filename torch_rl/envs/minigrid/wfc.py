"""Minigrid's Wave Function Collapse envs (``MiniGrid-WFC-*``), made to run from a plain ``pip install``.

The presets of ``minigrid/envs/wfc/config.py`` read pattern images from ``minigrid/envs/wfc/patterns/``, which
the published minigrid 3.x wheel does not include: ``gym.make("MiniGrid-WFC-MazeSimple-v0").reset()`` raises
FileNotFoundError. torch_rl ships the six images of the registered presets in ``wfc_patterns/`` (their source
and licenses in ``wfc_patterns/NOTICE.md``) and points the registered ids at them, so Minigrid's own ``WFCEnv``
and its own solver make the layouts; nothing here generates a layout.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

PATTERN_DIR = Path(__file__).resolve().parent / "wfc_patterns"
WFC_PREFIX = "MiniGrid-WFC-"


def shipped_config(preset: str):
    """Minigrid's preset ``preset`` (e.g. "MazeSimple"), its ``pattern_path`` in torch_rl's ``wfc_patterns/``."""
    from minigrid.envs.wfc.config import WFC_PRESETS_ALL

    config = WFC_PRESETS_ALL[preset]
    return dataclasses.replace(config, pattern_path=PATTERN_DIR / Path(config.pattern_path).name)


def use_shipped_patterns() -> None:
    """Points every registered ``MiniGrid-WFC-*`` id whose preset image Minigrid lacks at the shipped one.

    It changes the id's registered kwargs in place (``{"wfc_config": "MazeSimple"}`` becomes the preset's
    ``WFCConfig`` with the shipped path), so ``gym.make`` works everywhere after it, also in processes forked
    later. Where Minigrid has the image (a source install) nothing changes: Minigrid's own files win. Idempotent.
    """
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
    from minigrid.envs.wfc.config import WFC_PRESETS_ALL

    for env_id, spec in gym.registry.items():
        preset = spec.kwargs.get("wfc_config") if env_id.startswith(WFC_PREFIX) else None
        if not isinstance(preset, str) or preset not in WFC_PRESETS_ALL:
            continue
        name = Path(WFC_PRESETS_ALL[preset].pattern_path).name
        if not Path(WFC_PRESETS_ALL[preset].pattern_path).exists() and (PATTERN_DIR / name).exists():
            spec.kwargs["wfc_config"] = shipped_config(preset)
