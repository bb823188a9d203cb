"""What a Minigrid family tells the batched engine: its sizes, limits, mission, layout source and, only where
Minigrid's family overrides ``step``, its own rule.

A family is one small file under ``families/`` holding a :class:`Family` subclass; the engine
(:mod:`torch_rl.envs.minigrid.engine`) never names a family.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from torch_rl.envs.minigrid.engine import BatchedMiniGridEnv


@dataclass
class Layouts:
    """``m`` fresh episodes' start states, on the engine's device.

    ``grid``: (m, Hp * Wp) uint8 codes, padded by the engine's wall border (see ``engine.blank_grids``), or
    (m, H, W), the grid's own cells (the border around them is the engine's and never changes: the bank's layouts);
    ``agent``: (m,) padded flat agent index; ``dir``: (m,) directions; ``task``: (m, K) padded flat positions of
    the family's task state (K = ``Family.num_task_positions``); ``mission``: (m,) indices into the engine's
    mission list, or None for the family's one mission; ``contents``: (m, Hp * Wp) uint8 codes of what each
    cell's box holds (``C_EMPTY``: nothing), or (m, H, W) as ``grid``, or None when no box holds anything;
    ``extras``: the family's arrays of these layouts (:meth:`Family.pack_layout_extras`), for its ``reset_rows``.
    """

    grid: torch.Tensor
    agent: torch.Tensor
    dir: torch.Tensor
    task: torch.Tensor | None = None
    mission: torch.Tensor | None = None
    contents: torch.Tensor | None = None
    extras: Mapping[str, torch.Tensor] | None = None


class Family:
    """Base class: Minigrid's default rules with layouts from the bank.

    Subclasses set ``width``, ``height``, ``max_steps``, ``see_through_walls`` and ``mission`` (None when the
    mission changes per episode: then each layout carries its own) in ``__init__`` from the id's registered
    kwargs, exactly as the Minigrid class computes them. Override :meth:`generate` for a native tensor generator,
    and the step hooks only where Minigrid's family overrides ``step``.
    """

    width: int
    height: int
    max_steps: int
    see_through_walls: bool = False
    mission: str | None = None
    num_actions: int = 7  # size of Minigrid's action space for the family
    num_task_positions: int = 0  # per-episode positions the family's rule needs (Memory's success/failure cells)
    native: bool = False  # True when generate() makes the layouts (no bank)
    box_contents: bool = False  # True when the family's boxes may hold objects (the engine then tracks them)
    num_mission_codes: int = 0  # codes a mission names (the object to fetch, ...): see mission_codes()
    # the bank's options for this family where they differ from LayoutBank's (a slow generator starts smaller)
    bank_defaults: ClassVar[dict[str, Any]] = {}
    slow_layouts: bool = False  # True when Minigrid makes few layouts per second (the bank then says how to cache)
    max_mission_words: int = 17  # width of the mission tokens (LockedRoom's mission is the longest MiniGrid one)
    variable_max_steps: bool = False  # True when each episode has its own limit (BabyAI: from its instruction)

    @classmethod
    def from_registration(cls, entry_point: str, kwargs: dict[str, Any]) -> Family:
        """The family for a registered id (its Minigrid class ``entry_point``, its keyword arguments)."""
        return cls(**kwargs)

    def generate(self, env: BatchedMiniGridEnv, m: int) -> Layouts:
        raise NotImplementedError

    def layout_extras_spec(self) -> dict[str, tuple[tuple[int, ...], Any]]:
        """{name: (shape, numpy dtype)} of the per-layout arrays that :meth:`layout_extras` returns (bank families
        whose rule needs more than the grid: the bank stores and draws them with the layout)."""
        return {}

    def layout_extras(self, env: Any) -> dict[str, Any]:
        """The family's per-layout arrays for a real Minigrid env (unwrapped) just reset (made in the bank's worker)."""
        return {}

    def check_layout_extras(self, layouts: dict[str, Any]) -> None:
        """ValueError unless the family's arrays in ``layouts`` (read from a cache file) are in range."""

    def pack_layout_extras(self, extras: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The arrays a reset reads (``Layouts.extras``), made by the bank once per layout, as layouts arrive, from
        :meth:`layout_extras`' arrays (``n`` layouts as tensors on the bank's device); an array returned as it came
        is read in place. By default the family's arrays themselves."""
        return extras

    def init_state(self, env: BatchedMiniGridEnv) -> None:
        """Allocates the family's own per-env state on ``env`` (called once, before the first reset)."""

    def reset_rows(self, env: BatchedMiniGridEnv, rows: torch.Tensor, layouts: Layouts) -> None:
        """Sets the family's own state of the env rows ``rows`` from their fresh ``layouts``."""

    def load_minigrid_state(self, env: BatchedMiniGridEnv, i: int, real: Any) -> None:
        """Copies the family's own state of a real Minigrid env (unwrapped) into row ``i`` (fidelity tests)."""

    def task_positions_from_minigrid(self, env: Any) -> list[tuple[int, int]]:
        """The (x, y) task positions of a real Minigrid env (unwrapped) of this family."""
        return []

    def mission_codes(self, mission: str) -> list[int]:
        """The ``num_mission_codes`` cell codes that ``mission`` names (the engine keeps them per episode in
        ``env.task_codes``, so rules compare codes, not strings)."""
        return []

    def map_actions(self, env: BatchedMiniGridEnv, actions: torch.Tensor) -> torch.Tensor:
        """Actions as Minigrid's generic step will see them (a family may remap some)."""
        return actions

    def before_step(self, env: BatchedMiniGridEnv, actions: torch.Tensor) -> Any:
        """Runs before the generic step (after step_count is read, before it is incremented); returns a context."""
        return None

    def after_step(
        self,
        env: BatchedMiniGridEnv,
        actions: torch.Tensor,
        context: Any,
        reward: torch.Tensor,
        terminated: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The family's reward/termination rule on top of the generic step's."""
        return reward, terminated


class BankFamily(Family):
    """A family whose layouts come from the bank, its sizes and limits read from an instance of the Minigrid
    class that the id registers (built with the id's kwargs, not reset: cheap), so they are Minigrid's own."""

    minigrid_class: str  # "module:Class"

    def __init__(self, **kwargs: Any):
        module, name = self.minigrid_class.split(":")
        real = getattr(importlib.import_module(module), name)(**kwargs)
        self.width, self.height = real.width, real.height
        self.max_steps = real.max_steps
        self.see_through_walls = bool(real.see_through_walls)
        self.num_actions = int(real.action_space.n)
        self.mission = None  # per episode, from the bank


def position_of(env: Any, obj: Any) -> tuple[int, int]:
    """(x, y) of the object ``obj`` (by identity) in a Minigrid env's grid."""
    for i, cell in enumerate(env.grid.grid):
        if cell is obj:
            return i % env.grid.width, i // env.grid.width
    raise ValueError(f"{obj} is not in the grid")
