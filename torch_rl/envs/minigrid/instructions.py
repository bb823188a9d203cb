"""A BabyAI instruction and its verifier's state as fixed-size arrays, read from a real Minigrid env.

Minigrid's verifier (``minigrid/envs/babyai/core/verifier.py``) is a tree of Python objects holding object
references. Its shapes are few: the level generators build one action (``go to``, ``open``, ``pick up``, ``put
next to``), ``A and B`` of two actions, or ``X, then Y`` / ``Y after you X`` where X and Y are each an action or an
``and`` of two. ``Y after you X`` verifies exactly as ``X, then Y`` (``AfterInstr.verify`` is ``BeforeInstr.verify``
with its two parts swapped), so every instruction is stored as up to two *parts* run in order, each one action
(slot ``2p``) or an ``and`` of two (slots ``2p`` and ``2p + 1``): four leaf slots in all.

Objects are what the verdict follows by identity (``carrying is obj``, ``front_cell is door``), so each object
that some description matches gets an id 1..62, the bit it sets in a description's mask; every other object is
``UNTRACKED`` (carrying it still counts as carrying something) and 0 is no object. Arrays (grid cells row-major,
``i = y * width + x``):

- ``ids`` (H * W) uint8: the object id in each cell;
- ``known`` (H * W) uint8: bit ``l`` where a cell is among leaf ``l``'s ``desc.obj_poss`` (``go to`` checks these:
  Minigrid refreshes them only when the agent drops something, so they can lag behind the objects);
- ``obj_pos`` (64, 2) int64: each id's ``cur_pos`` (x, y), (-1, -1) when carried or unknown;
- ``carry`` (2,): the carried object's engine code and id (PutNext's ``Carrying`` levels start with one);
- ``limit`` (): the episode's ``max_steps`` (BabyAI computes it from the instruction);
- ``tree`` (4,): ``[two parts in sequence, the sequence is strict, kind of part 0, kind of part 1]`` (part kinds:
  0 none, 1 one action, 2 an ``and``);
- ``leaf`` (4, 5) int64 per slot: ``[kind, strict, mask of desc (or desc_move), mask of desc_fixed, pre-carrying
  id]`` (kinds below);
- ``done`` (5,): which slots an ``and`` has seen succeed (it stops asking them), and whether part 0 succeeded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from torch_rl.envs.minigrid import codes as C

NONE, GOTO, OPEN, PICKUP, PUTNEXT = range(5)  # leaf kinds
PART_NONE, PART_ACTION, PART_AND = range(3)
NUM_SLOTS = 4
MAX_IDS = 64
UNTRACKED = MAX_IDS - 1  # an object no description matches (bit 63: never in a mask)


def extras_spec(height: int, width: int) -> dict[str, tuple[tuple[int, ...], Any]]:
    """The shapes and dtypes of :func:`encode`'s arrays."""
    cells = height * width
    return {
        "ids": ((cells,), np.uint8),
        "known": ((cells,), np.uint8),
        "obj_pos": ((MAX_IDS, 2), np.int64),
        "carry": ((2,), np.int64),
        "limit": ((), np.int64),
        "tree": ((4,), np.int64),
        "leaf": ((NUM_SLOTS, 5), np.int64),
        "done": ((NUM_SLOTS + 1,), np.int64),
    }


def _verifier_classes():
    from minigrid.envs.babyai.core import verifier

    if verifier.use_done_actions:
        raise ValueError("BABYAI_DONE_ACTIONS is set: the batched BabyAI envs follow Minigrid's default verifier")
    return verifier


def _parts(instrs) -> tuple[list, bool, bool]:
    """(up to two parts, in the order they must be done; sequenced; strict sequence) of an instruction tree."""
    v = _verifier_classes()
    if isinstance(instrs, v.BeforeInstr):
        return [instrs.instr_a, instrs.instr_b], True, bool(instrs.strict)
    if isinstance(instrs, v.AfterInstr):
        return [instrs.instr_b, instrs.instr_a], True, bool(instrs.strict)
    return [instrs], False, False


def _leaves(part) -> list:
    v = _verifier_classes()
    if isinstance(part, v.AndInstr):
        if not (isinstance(part.instr_a, v.ActionInstr) and isinstance(part.instr_b, v.ActionInstr)):
            raise ValueError("an 'and' of something other than two actions is not supported")
        return [part.instr_a, part.instr_b]
    if isinstance(part, v.ActionInstr):
        return [part]
    raise ValueError(f"unsupported instruction {type(part).__name__}")


def _kind(leaf) -> int:
    v = _verifier_classes()
    for cls, kind in ((v.GoToInstr, GOTO), (v.OpenInstr, OPEN), (v.PickupInstr, PICKUP), (v.PutNextInstr, PUTNEXT)):
        if isinstance(leaf, cls):
            return kind
    raise ValueError(f"unsupported action instruction {type(leaf).__name__}")


def _first_done(instrs) -> bool:
    """Whether the part done first has succeeded (BeforeInstr's a_done, AfterInstr's b_done)."""
    v = _verifier_classes()
    if isinstance(instrs, v.BeforeInstr):
        return getattr(instrs, "a_done", False) == "success"
    if isinstance(instrs, v.AfterInstr):
        return getattr(instrs, "b_done", False) == "success"
    return False


def encode(env: Any) -> dict[str, np.ndarray]:
    """The arrays of :func:`extras_spec` for a real BabyAI env (unwrapped) whose verifier has been reset (by
    ``reset``), at any step of its episode."""
    grid = env.grid
    width, height = grid.width, grid.height
    parts, sequenced, strict_sequence = _parts(env.instrs)
    if len(parts) > 2:
        raise ValueError("more than two parts in sequence")

    slots: list[tuple[int, Any]] = []  # (slot, leaf)
    tree = np.zeros(4, np.int64)
    tree[0], tree[1] = int(sequenced), int(strict_sequence)
    done = np.zeros(NUM_SLOTS + 1, np.int64)
    done[NUM_SLOTS] = int(_first_done(env.instrs))
    for p, part in enumerate(parts):
        leaves = _leaves(part)
        tree[2 + p] = PART_AND if len(leaves) == 2 else PART_ACTION
        for k, leaf in enumerate(leaves):
            slots.append((2 * p + k, leaf))
        if len(leaves) == 2:  # AndInstr memo: a side that succeeded is not asked again
            done[2 * p] = int(getattr(part, "a_done", False) == "success")
            done[2 * p + 1] = int(getattr(part, "b_done", False) == "success")

    ids_of: dict[int, int] = {}  # id(object) -> its id

    def object_id(obj) -> int:
        if id(obj) not in ids_of:
            if len(ids_of) >= UNTRACKED - 1:
                raise ValueError(f"more than {UNTRACKED - 1} objects in the instruction's descriptions")
            ids_of[id(obj)] = len(ids_of) + 1
        return ids_of[id(obj)]

    def mask(desc) -> int:
        bits = 0
        for obj in desc.obj_set:
            bits |= 1 << object_id(obj)
        return bits

    objects: dict[int, Any] = {}
    leaf = np.zeros((NUM_SLOTS, 5), np.int64)
    for slot, instr in slots:
        kind = _kind(instr)
        first = instr.desc_move if kind == PUTNEXT else instr.desc
        leaf[slot, 0], leaf[slot, 1] = kind, int(getattr(instr, "strict", False))
        leaf[slot, 2] = mask(first)
        leaf[slot, 3] = mask(instr.desc_fixed) if kind == PUTNEXT else 0
        for desc in (first, instr.desc_fixed) if kind == PUTNEXT else (first,):
            objects.update({id(o): o for o in desc.obj_set})

    def id_or_untracked(obj) -> int:
        if obj is None:
            return 0
        return ids_of.get(id(obj), UNTRACKED)

    for slot, instr in slots:
        leaf[slot, 4] = id_or_untracked(getattr(instr, "preCarrying", None))

    ids = np.zeros((height, width), np.uint8)
    for i, cell in enumerate(grid.grid):
        if cell is not None and cell.type != "wall":
            ids[i // width, i % width] = id_or_untracked(cell)
        elif cell is not None and id(cell) in ids_of:  # a wall some description matches (none do in Minigrid 3)
            ids[i // width, i % width] = ids_of[id(cell)]

    known = np.zeros((height, width), np.uint8)
    for slot, instr in slots:
        if leaf[slot, 0] == GOTO:
            for x, y in instr.desc.obj_poss:
                known[int(y), int(x)] |= 1 << slot

    obj_pos = np.full((MAX_IDS, 2), -1, np.int64)
    for key, obj in objects.items():
        if obj.cur_pos is not None:
            obj_pos[ids_of[key]] = [int(obj.cur_pos[0]), int(obj.cur_pos[1])]

    carry = np.array([C.code_of_object(env.carrying), id_or_untracked(env.carrying)], np.int64)
    return {
        "ids": ids.reshape(-1),
        "known": known.reshape(-1),
        "obj_pos": obj_pos,
        "carry": carry,
        "limit": np.array(int(env.max_steps), np.int64),
        "tree": tree,
        "leaf": leaf,
        "done": done,
    }


def check_arrays(arrays: dict[str, np.ndarray], height: int, width: int) -> None:
    """ValueError unless encoded instructions (n layouts, :func:`extras_spec`'s names) hold only values that
    :func:`encode` makes: ids, kinds and flags in range, positions inside the grid, the limit positive."""
    leaf, tree, pos = arrays["leaf"], arrays["tree"], arrays["obj_pos"]
    inside = ((pos == -1).all(-1)) | (
        (pos[..., 0] >= 0) & (pos[..., 0] < width) & (pos[..., 1] >= 0) & (pos[..., 1] < height)
    )
    checks = {
        "ids": (arrays["ids"] < MAX_IDS).all(),
        "known": (arrays["known"] < 1 << NUM_SLOTS).all(),
        "obj_pos": inside.all(),
        "carry": ((arrays["carry"][:, 0] >= 0) & (arrays["carry"][:, 0] < C.N_CODES)).all()
        and ((arrays["carry"][:, 1] >= 0) & (arrays["carry"][:, 1] < MAX_IDS)).all(),
        "limit": (arrays["limit"] > 0).all(),
        "tree": np.isin(tree[:, :2], (0, 1)).all() and np.isin(tree[:, 2:], (PART_NONE, PART_ACTION, PART_AND)).all(),
        "leaf": np.isin(leaf[..., 0], range(5)).all()
        and np.isin(leaf[..., 1], (0, 1)).all()
        and (leaf[..., 2:4] >= 0).all()
        and ((leaf[..., 4] >= 0) & (leaf[..., 4] < MAX_IDS)).all(),
        "done": np.isin(arrays["done"], (0, 1)).all(),
    }
    bad = [name for name, ok in checks.items() if not ok]
    if bad:
        raise ValueError(f"its instruction arrays {bad} hold values out of range")
