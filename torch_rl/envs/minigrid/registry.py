"""Every Minigrid id the batched engine supports, and the family that runs it.

A family's module in ``families/`` holds one :class:`~torch_rl.envs.minigrid.family.Family` subclass; it is built
with the keyword arguments Minigrid registers for the id (``gymnasium.registry[id].kwargs``), so sizes and
limits follow Minigrid's own registration.
"""

from __future__ import annotations

import importlib

from torch_rl.envs.minigrid.family import Family

# family name -> "module:Class" under torch_rl.envs.minigrid.families
FAMILIES: dict[str, str] = {
    "Empty": "empty:EmptyFamily",
    "DoorKey": "doorkey:DoorKeyFamily",
}

# id -> family name
ENV_FAMILY: dict[str, str] = {
    "MiniGrid-Empty-5x5-v0": "Empty",
    "MiniGrid-Empty-Random-5x5-v0": "Empty",
    "MiniGrid-Empty-6x6-v0": "Empty",
    "MiniGrid-Empty-Random-6x6-v0": "Empty",
    "MiniGrid-Empty-8x8-v0": "Empty",
    "MiniGrid-Empty-16x16-v0": "Empty",
    "MiniGrid-DoorKey-5x5-v0": "DoorKey",
    "MiniGrid-DoorKey-6x6-v0": "DoorKey",
    "MiniGrid-DoorKey-8x8-v0": "DoorKey",
    "MiniGrid-DoorKey-16x16-v0": "DoorKey",
}
SUPPORTED_ENV_IDS: tuple[str, ...] = tuple(ENV_FAMILY)


def family_names() -> list[str]:
    return list(FAMILIES)


def make_family(env_id: str) -> Family:
    """The family object for ``env_id``; ValueError (naming the supported ids) for any other id."""
    if env_id not in ENV_FAMILY:
        raise ValueError(
            f"Unsupported env id {env_id!r}; BatchedMiniGridEnv supports the families {', '.join(FAMILIES)}: "
            + ", ".join(SUPPORTED_ENV_IDS)
        )
    import gymnasium as gym
    import minigrid  # noqa: F401  (registers the MiniGrid-* ids)

    module, cls = FAMILIES[ENV_FAMILY[env_id]].split(":")
    family_cls = getattr(importlib.import_module(f"torch_rl.envs.minigrid.families.{module}"), cls)
    return family_cls(**gym.registry[env_id].kwargs)
