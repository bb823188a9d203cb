"""Cell codes of the batched MiniGrid engine: every object Minigrid can put in a cell is one small integer.

A code stands for one Minigrid encoding ``(OBJECT_IDX, COLOR_IDX, STATE)`` (``minigrid/core/constants.py``).
Code 0 is "unseen" (only in observations), so masking invisible cells is a multiplication by 0/1; the codes an
agent can see through come first, so "see behind" is ``code < C_OPAQUE0``. A box's contents are not part of its
code (Minigrid encodes a box by its own colour whatever it holds): the engine keeps them in a separate per-cell
tensor of codes (``C_EMPTY``: nothing inside), see :func:`contents_code_of_object`.
"""

from __future__ import annotations

OBJECT_IDX = {
    "unseen": 0,
    "empty": 1,
    "wall": 2,
    "floor": 3,
    "door": 4,
    "key": 5,
    "ball": 6,
    "box": 7,
    "goal": 8,
    "lava": 9,
    "agent": 10,
}
COLOR_IDX = {"red": 0, "green": 1, "blue": 2, "purple": 3, "yellow": 4, "grey": 5}
N_COLORS = 6
DOOR_OPEN, DOOR_CLOSED, DOOR_LOCKED = 0, 1, 2

ENCODINGS: list[tuple[int, int, int]] = [(0, 0, 0)]  # code -> Minigrid encoding; 0 = unseen


def _add(*encodings: tuple[int, int, int]) -> int:
    first = len(ENCODINGS)
    ENCODINGS.extend(encodings)
    return first


def _per_colour(obj: str, state: int = 0) -> int:
    return _add(*[(OBJECT_IDX[obj], c, state) for c in range(N_COLORS)])


C_UNSEEN = 0
C_EMPTY = _add((OBJECT_IDX["empty"], 0, 0))
C_GOAL = _add((OBJECT_IDX["goal"], COLOR_IDX["green"], 0))
C_LAVA = _add((OBJECT_IDX["lava"], COLOR_IDX["red"], 0))
C_FLOOR0 = _per_colour("floor")  # floor of colour c: C_FLOOR0 + c
C_KEY0 = _per_colour("key")
C_BALL0 = _per_colour("ball")
C_BOX0 = _per_colour("box")
C_DOOR_OPEN0 = _per_colour("door", DOOR_OPEN)
C_OPAQUE0 = len(ENCODINGS)  # everything from here on blocks the view
C_WALL0 = _per_colour("wall")
C_WALL = C_WALL0 + COLOR_IDX["grey"]  # Minigrid's default wall, and what it reports outside the grid
C_DOOR_CLOSED0 = _per_colour("door", DOOR_CLOSED)
C_DOOR_LOCKED0 = _per_colour("door", DOOR_LOCKED)
N_CODES = len(ENCODINGS)
N_ACTIONS = 7  # Minigrid's actions: left, right, forward, pick up, drop, toggle, done

_DOOR_BASE = {DOOR_OPEN: C_DOOR_OPEN0, DOOR_CLOSED: C_DOOR_CLOSED0, DOOR_LOCKED: C_DOOR_LOCKED0}
CODE_OF_ENCODING = {enc: i for i, enc in enumerate(ENCODINGS) if i != C_UNSEEN}


def _colour_range(base: int, code: int) -> bool:
    return base <= code < base + N_COLORS


def is_key(code: int) -> bool:
    return _colour_range(C_KEY0, code)


def can_pickup(code: int) -> bool:
    return is_key(code) or _colour_range(C_BALL0, code) or _colour_range(C_BOX0, code)


def door_code(color: int, state: int) -> int:
    return _DOOR_BASE[state] + color


def door_of(code: int) -> tuple[int, int] | None:
    """(colour, state) of a door code, None for other codes."""
    for state, base in _DOOR_BASE.items():
        if _colour_range(base, code):
            return code - base, state
    return None


def see_behind(code: int) -> bool:
    return code < C_OPAQUE0


def can_overlap(code: int) -> bool:
    door = door_of(code)
    if door is not None:
        return door[1] == DOOR_OPEN
    return code in (C_EMPTY, C_GOAL, C_LAVA) or _colour_range(C_FLOOR0, code)


def toggled(front: int, carry: int) -> int:
    """The code left in front after Minigrid's ``toggle`` (Door.toggle, Box.toggle; others do nothing)."""
    if _colour_range(C_BOX0, front):
        return C_EMPTY  # the box is replaced by its contents: the engine puts them here (C_EMPTY when none)
    door = door_of(front)
    if door is None:
        return front
    color, state = door
    if state == DOOR_LOCKED:
        return door_code(color, DOOR_OPEN) if is_key(carry) and carry - C_KEY0 == color else front
    return door_code(color, DOOR_CLOSED if state == DOOR_OPEN else DOOR_OPEN)


def code_of_object(obj) -> int:
    """The code of a Minigrid ``WorldObj`` (or None: empty); ValueError for what the engine cannot represent.
    A box's code is its colour's, whatever it holds (see :func:`contents_code_of_object`)."""
    if obj is None:
        return C_EMPTY
    enc = tuple(int(v) for v in obj.encode())
    if enc not in CODE_OF_ENCODING:
        raise ValueError(f"unsupported Minigrid object {obj.type}/{obj.color} (encoding {enc})")
    return CODE_OF_ENCODING[enc]


def contents_code_of_object(obj) -> int:
    """The code of what a Minigrid object holds (``Box.contains``), ``C_EMPTY`` for nothing or a non-box;
    ValueError for contents the engine cannot hold (only objects that can be picked up, themselves empty)."""
    inside = getattr(obj, "contains", None) if obj is not None else None
    if inside is None:
        return C_EMPTY
    code = code_of_object(inside)
    if not can_pickup(code) or getattr(inside, "contains", None) is not None:
        raise ValueError(f"a box holding a {inside.type} is not supported")
    return code


def object_code(obj_type: str, color: str) -> int:
    """The code of a key, ball or box of a colour named as in Minigrid's missions ("red", "key", ...)."""
    base = {"key": C_KEY0, "ball": C_BALL0, "box": C_BOX0}[obj_type]
    return base + COLOR_IDX[color]
