"""Missions as token ids: a fixed vocabulary of every word Minigrid's missions use, for the supported ids
(MiniGrid's and BabyAI's).

A mission is split into words as ``utils.format.Vocabulary`` splits it (lower case, runs of ``a``-``z``);
word ``MISSION_WORDS[k]`` is token ``k + 1`` and 0 pads. The engine returns each env's mission as a row of
``MAX_MISSION_WORDS`` tokens (``obs["mission_tokens"]``), so a text model's preprocessor maps token ids to its own
vocabulary with one lookup, without handling strings per step.
"""

from __future__ import annotations

import re

import torch

COLOR_WORDS = ("red", "green", "blue", "purple", "yellow", "grey")
# Grouped by the missions that use them; the order fixes the token ids, so only append.
MISSION_WORDS: tuple[str, ...] = (
    *COLOR_WORDS,
    *("key", "ball", "box", "door", "goal", "square", "lava", "room", "rooms", "opening", "object", "hallway"),
    *("a", "and", "at", "end", "from", "near", "of", "the", "then", "to", "up", "you", "must"),
    *("avoid", "fetch", "find", "get", "go", "matching", "open", "pick", "put", "reach", "traverse", "unlock", "use"),
    # BabyAI's grammar (minigrid/envs/babyai/core/verifier.py): locations, "next to", "after you"
    *("after", "behind", "front", "in", "left", "next", "on", "right", "your"),
    "maze",  # WFC's "traverse the maze to get to the goal"
)
MAX_MISSION_WORDS = 17  # LockedRoom's "get the red key from the blue room, unlock the ... goal"
TOKEN_OF_WORD = {word: k + 1 for k, word in enumerate(MISSION_WORDS)}
assert len(MISSION_WORDS) < 256  # the engine keeps each row's tokens as uint8
_WORD = re.compile("([a-z]+)")


def mission_words(mission: str) -> list[str]:
    """The words of a mission, split as ``utils.format.Vocabulary`` splits them."""
    return _WORD.findall(mission.lower())


def mission_tokens(
    missions: list[str], device: torch.device | str = "cpu", width: int = MAX_MISSION_WORDS
) -> torch.Tensor:
    """(len(missions), width) int64 token ids, 0-padded; ValueError for a word not in the vocabulary or a mission
    of more than ``width`` words."""
    rows = torch.zeros(len(missions), width, dtype=torch.int64)
    for i, mission in enumerate(missions):
        words = mission_words(mission)
        unknown = [w for w in words if w not in TOKEN_OF_WORD]
        if unknown or len(words) > width:
            raise ValueError(f"mission {mission!r} has words outside the batched vocabulary or is too long")
        rows[i, : len(words)] = torch.tensor([TOKEN_OF_WORD[w] for w in words], dtype=torch.int64)
    return rows.to(device)
