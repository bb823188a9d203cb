"""Minigrid's BabyAI verifier (``minigrid/envs/babyai/core/verifier.py``) on tensors, for a batch of episodes.

Each env row holds its instruction as :mod:`.instructions` encodes it: up to two parts done in order, each one
action or an ``and`` of two, in four leaf slots. Per step, every slot's verdict is computed as if Minigrid had
called its ``verify`` (they read only the state after the step and the slot's own ``preCarrying``), then the
parts and the sequence combine them, and remember, exactly as ``AndInstr`` and ``BeforeInstr`` do: a slot's
``preCarrying`` changes only on the steps Minigrid calls it, and an ``and`` stops calling a side once it
succeeded.

Objects are followed by id (see :mod:`.instructions`): ``ids`` per cell, the carried id, and each id's
``cur_pos``, which Minigrid changes only on pickup (to (-1, -1)) and drop (toggling a box leaves it). The
``go to`` positions (``desc.obj_poss``) are the ``known`` bits per cell, refreshed from the current objects on
every ``drop`` action, as ``RoomGridLevel.step`` calls ``update_objs_poss``.

The parts, ands and sequence combine the four slots' verdicts by a fixed logic of a few bits per row (the and's
memo, whether part 0 is done, the tree's shape): :func:`combine` writes it once, on arrays, and
:func:`sequence_table` evaluates it for every combination of those bits, so a step looks it up in one gather.

Speed: a level's instructions often use few of the rules (GoToLocal only ``go to`` of one object, OpenDoor only
``open``), so the verifier works out, from the instructions its rows have held so far (a set that only grows),
which rules, slots and object tracking any row can need, and computes only those. On the CPU the step (following
the objects, then the verdict) runs as one C loop with the same rules (``fused_verifier.c``, :mod:`.fused`): its
tensor ops here are what CUDA runs, and what the loop is tested against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid import instructions as I  # noqa: E741 (the module's name reads as a namespace)
from torch_rl.envs.minigrid.view import PAD

A_PICKUP, A_DROP, A_TOGGLE = 3, 4, 5


# the packed per-row state (:func:`pack`): int64 columns [carry code, limit, carried id, kind x4, mask x4, mask of
# desc_fixed x4, pre-carrying id x4, logic word], of which the verifier keeps all but the first two; bool columns
# [strict x4, go-to positions stale (True)]; the rules a row uses (bool: leaf kinds 0..4, a sequence, an and, a
# strict leaf)
STATE, FLAGS, USED = 20, 5, 8
# the verifier's state columns (BatchedVerifier.state, without the first two) and flags (fused_verifier.c reads them
# too): the carried id, then NUM_SLOTS columns each of kind, mask, mask of desc_fixed and pre-carrying id, the logic
# word; strict per slot, then stale
S_CARRY_ID, S_KIND, S_MASK, S_MASK_FIXED, S_PRE, S_LOGIC = (0, *(1 + k * I.NUM_SLOTS for k in range(5)))
F_STRICT, F_STALE = 0, I.NUM_SLOTS
# what a step computes (fused_verifier.c's rules): objects move (ids, the carried id), go-to positions, objects'
# places, pre-carrying ids, strict failures
RULE_FOLLOW, RULE_GOTO, RULE_PUTNEXT, RULE_REMEMBERS, RULE_STRICT = 1, 2, 4, 8, 16
# the logic word's bits: [sequenced, strict sequence, part 0 is an and, part 1 is an and, an and's memo x4, part 0
# done]; a step's index into sequence_table adds the slots' successes (4 bits) and failures (4 bits) above them
LOGIC_BITS = 9
SEQUENCED, STRICT_SEQUENCE, PART_AND, MEMO, FIRST_DONE = 0, 1, 2, 4, 8


def combine(word, success, failure):
    """Minigrid's ``AndInstr`` and ``BeforeInstr.verify`` (``AfterInstr`` is the same, its parts swapped) over the
    four slots' verdicts ``success`` and ``failure`` (lists of 4 bool arrays) of rows in the state ``word`` (int
    array, the logic word's bits): (success, failure, the next logic word, the slots asked this step (list of 4))."""

    def bit(k):
        return ((word >> k) & 1) != 0

    seq, strict_seq, first_done = bit(SEQUENCED), bit(STRICT_SEQUENCE), bit(FIRST_DONE)
    memo = [bit(MEMO + k) for k in range(4)]
    asked, new_memo = [None] * 4, list(memo)

    def part(p, called):
        a, b = 2 * p, 2 * p + 1
        is_and = bit(PART_AND + p)
        asked[a] = called & ~(is_and & memo[a])  # an and stops asking a side that succeeded
        asked[b] = called & is_and & ~memo[b]
        done_a = memo[a] | (asked[a] & success[a])
        done_b = memo[b] | (asked[b] & success[b])
        new_memo[a] = (is_and & done_a) | (~is_and & memo[a])
        new_memo[b] = (is_and & done_b) | (~is_and & memo[b])
        ok = called & ((is_and & done_a & done_b) | (~is_and & success[a]))
        return ok, called & ~is_and & failure[a]

    # part 0 is asked unless it is done; part 1 after it (and, in a strict sequence, alongside it)
    ok0, fail0 = part(0, ~first_done)
    going0 = ~ok0 & ~fail0
    ok1, fail1 = part(1, seq & (first_done | ok0 | (strict_seq & going0)))
    ok = (seq & ((first_done & ok1) | (~first_done & ok0 & ok1))) | (~seq & ok0)
    fail_seq = (first_done & fail1) | (~first_done & (fail0 | (ok0 & fail1) | (going0 & strict_seq & ok1)))
    fail = (seq & fail_seq) | (~seq & fail0)
    first_done = first_done | (seq & ok0)
    new_word = word & ((1 << MEMO) - 1)
    for k in range(4):
        new_word = new_word | (new_memo[k].astype(word.dtype) << (MEMO + k))
    new_word = new_word | (first_done.astype(word.dtype) << FIRST_DONE)
    return ok, fail, new_word, asked


def sequence_table():
    """:func:`combine` for every (logic word, successes, failures): entry ``[word | s << 9 | f << 13]`` is the next
    word, then success (bit 9), failure (bit 10) and the slots asked (bits 11-14)."""
    index = np.arange(1 << (LOGIC_BITS + 8), dtype=np.int64)
    word = index & ((1 << LOGIC_BITS) - 1)
    success = [((index >> (LOGIC_BITS + k)) & 1) != 0 for k in range(4)]
    failure = [((index >> (LOGIC_BITS + 4 + k)) & 1) != 0 for k in range(4)]
    ok, fail, new_word, asked = combine(word, success, failure)
    out = new_word | (ok.astype(np.int64) << LOGIC_BITS) | (fail.astype(np.int64) << (LOGIC_BITS + 1))
    for k in range(4):
        out |= asked[k].astype(np.int64) << (LOGIC_BITS + 2 + k)
    return out


def pack(extras: dict[str, torch.Tensor], height: int, width: int) -> dict[str, torch.Tensor]:
    """The arrays :meth:`BatchedVerifier.load` reads, from :func:`.instructions.encode`'s (n rows, as tensors):
    made once per layout by the bank, so that a reset copies a few packed rows."""
    n = extras["tree"].shape[0]
    dev = extras["tree"].device
    tree = extras["tree"].view(n, 4)
    leaf = extras["leaf"].view(n, I.NUM_SLOTS, 5)
    carry = extras["carry"].view(n, 2)
    kind = leaf[..., 0]
    is_and = tree[:, 2:] == I.PART_AND
    done = extras["done"].view(n, I.NUM_SLOTS + 1) != 0
    logic_bits = torch.cat([tree[:, :2] != 0, is_and, done], 1).long()  # in the logic word's order
    logic = (logic_bits << torch.arange(LOGIC_BITS, device=dev)).sum(1, keepdim=True)
    state = torch.cat(
        [carry[:, :1], extras["limit"].view(n, 1), carry[:, 1:], kind, leaf[..., 2], leaf[..., 3], leaf[..., 4], logic],
        1,
    )
    strict = leaf[..., 1] != 0
    stale = torch.ones(n, 1, dtype=torch.bool, device=dev)
    flags = torch.cat([strict, stale], 1)
    kinds = (kind.unsqueeze(2) == torch.arange(5, device=dev)).any(1)
    used = torch.cat([kinds, tree[:, :1] != 0, is_and.any(1, keepdim=True), strict.any(1, keepdim=True)], 1)
    # id -> bits of the go-to slots whose descriptions match it
    member = (leaf[..., 2].unsqueeze(2) >> torch.arange(I.MAX_IDS, device=dev)) & 1  # (n, slots, ids)
    goto = (kind == I.GOTO).unsqueeze(2)
    slot_bits = torch.tensor([1 << s for s in range(I.NUM_SLOTS)], dtype=torch.uint8, device=dev)
    goto_bits = ((member * goto).to(torch.uint8) * slot_bits.view(1, -1, 1)).sum(1).to(torch.uint8)
    Wp = width + 2 * PAD
    xy = extras["obj_pos"].view(n, I.MAX_IDS, 2)
    flat = (xy[..., 1] + PAD) * Wp + xy[..., 0] + PAD
    obj_pos = torch.where(xy[..., 0] < 0, Wp + 1, flat).to(torch.int16)  # Wp + 1: "nowhere"
    return {
        "state": state,
        "flags": flags,
        "used": used,
        "goto_bits": goto_bits,
        "obj_pos": obj_pos,
        "ids": extras["ids"],
        "known": extras["known"],
    }


class BatchedVerifier:
    """The verifier's state for ``env``'s B rows, and its step."""

    def __init__(self, env: Any):
        B, dev, cells = env.num_envs, env.device, env.Hp * env.Wp
        self.env = env
        self.ids = torch.zeros(B, cells, dtype=torch.uint8, device=dev)
        self.known = torch.zeros(B, cells, dtype=torch.uint8, device=dev)
        self.goto_cells = torch.zeros(B, cells, dtype=torch.uint8, device=dev)  # known bits of the objects now
        self.goto_bits = torch.zeros(B, I.MAX_IDS, dtype=torch.uint8, device=dev)  # id -> slots of its go-tos
        # a reset writes only the grid's cells: the padding stays 0 (no object; no step writes there)
        self._ids_in, self._known_in, self._goto_in = (
            env.grid_view(t)[:, PAD : PAD + env.height, PAD : PAD + env.width]
            for t in (self.ids, self.known, self.goto_cells)
        )
        # padded flat cur_pos (a row whose instruction has no "put next to" keeps "nowhere": always in the grid)
        self.obj_pos = torch.full((B, I.MAX_IDS), env.Wp + 1, dtype=torch.int64, device=dev)
        # the per-row state as two tensors (a reset writes each in one copy), and its fields as views of them
        self.state = torch.zeros(B, STATE - 2, dtype=torch.int64, device=dev)
        self.flags = torch.zeros(B, FLAGS, dtype=torch.bool, device=dev)
        S = I.NUM_SLOTS
        self.carry_id = self.state[:, S_CARRY_ID]
        self.kind = self.state[:, S_KIND : S_KIND + S]
        self.mask = self.state[:, S_MASK : S_MASK + S]
        self.mask_fixed = self.state[:, S_MASK_FIXED : S_MASK_FIXED + S]
        self.pre = self.state[:, S_PRE : S_PRE + S]
        self.logic = self.state[:, S_LOGIC]
        self.strict = self.flags[:, F_STRICT : F_STRICT + S]
        # a row's known go-to positions may lag its objects' (set at a reset; cleared by a drop's refresh)
        self.stale = self.flags[:, F_STALE]
        self._sequence = torch.as_tensor(sequence_table(), device=dev)
        # a step's success and failure bits, placed above the logic word's
        self._verdict_bits = torch.tensor([1 << (LOGIC_BITS + k) for k in range(2 * S)], device=dev)
        # (-1, -1), where Minigrid puts a carried object, as a padding cell whose neighbours are padding too
        self.nowhere = env.Wp + 1
        self._neighbours = torch.tensor([1, -1, env.Wp, -env.Wp], device=dev)
        self._slots = torch.arange(I.NUM_SLOTS, device=dev)
        # per transition index of the engine's step (action, front code, carried code): what the hands and a box did
        # (the hands change only by a pickup, from empty, or a drop, to empty)
        index = torch.arange(env._t_carry.numel(), device=dev)
        carried, front_code, action = index % C.N_CODES, index // C.N_CODES % C.N_CODES, index // C.N_CODES**2
        self._t_picked = (carried == C.C_EMPTY) & (env._t_carry != C.C_EMPTY)
        self._t_dropped = (carried != C.C_EMPTY) & (env._t_carry == C.C_EMPTY)
        is_box = (front_code >= C.C_BOX0) & (front_code < C.C_BOX0 + C.N_COLORS)
        self._t_opened_box = (action == A_TOGGLE) & is_box
        self._is_door = torch.tensor([C.door_of(c) is not None for c in range(C.N_CODES)], device=dev)
        # what the instructions loaded so far use (only grows): leaf kinds, slots, strict rules
        self.used = [False] * USED
        self.kinds: set[int] = set()
        self.num_slots = 1
        self.any_strict = False
        self._bank_seen, self._bank_used = -1, [True] * USED  # the rules the bank's layouts use, at its size then
        # with the env's compile, the verdict is one graph. Scalar code: Inductor's CPU vectorization runs the few
        # slots of the inner dimension as 16-wide masked vectors, slower than eager (MiniBossLevel at B = 1024:
        # compiled verdict 606 us vectorized, 95 us scalar, 435 us eager). The objects' step stays eager: its
        # scatters into whole grids would be copied back whole.
        # On the CPU the whole step is one C loop (fused_verifier.c), faster than either, where the env has it.
        self._library = env.fused_library
        if self._library is None:
            self._verdict_step = env.compile_function(self._verdict, **{"cpp.simdlen": 1})

    # ------------------------------------------------------------------ state in
    def load(self, rows: torch.Tensor, packed: dict[str, torch.Tensor], from_bank: bool = True) -> None:
        """Rows ``rows`` take the packed state ``packed`` (:func:`pack`, one row per env row), drawn from the bank's
        layouts (``from_bank``) or not. Go-to positions and objects' places are written only where some row's
        instruction reads them (the rules check a row's kinds before reading them)."""
        env, m = self.env, rows.numel()
        self._note_rules(packed, from_bank)
        state = packed["state"]
        env.carry[rows] = state[:, 0]
        env.limit[rows] = state[:, 1]
        self.state[rows] = state[:, 2:]
        self.flags[rows] = packed["flags"]
        H, W = env.height, env.width
        ids = packed["ids"]
        self._ids_in[rows] = ids.view(m, H, W)
        if I.PUTNEXT in self.kinds:
            self.obj_pos[rows] = packed["obj_pos"].long()
        if I.GOTO in self.kinds:
            bits = packed["goto_bits"]
            self._known_in[rows] = packed["known"].view(m, H, W)
            self.goto_bits[rows] = bits
            self._goto_in[rows] = torch.gather(bits, 1, ids.long()).view(m, H, W)

    def _note_rules(self, packed: Mapping[str, torch.Tensor], from_bank: bool) -> None:
        """Adds what these rows' instructions use to the rules computed at each step: nothing to do (and no host
        sync) once the rules cover all that the bank's layouts use."""
        bank = self.env.bank
        if from_bank and bank is not None:
            if bank.received != self._bank_seen:
                self._bank_seen = bank.received
                self._bank_used = bank.packed["used"][: bank.received].any(0).tolist()
            if all(u <= s for u, s in zip(self._bank_used, self.used, strict=True)):
                return
        used = packed["used"].any(0).tolist()  # (read only here: a drawn array is gathered when read)
        self.used = [u or s for u, s in zip(used, self.used, strict=True)]
        self.kinds = {k for k in (I.GOTO, I.OPEN, I.PICKUP, I.PUTNEXT) if self.used[k]}
        if self.used[5] or self.used[6]:  # a sequence or an "and": more than one slot
            self.num_slots = I.NUM_SLOTS
        self.any_strict = self.used[7]

    # ------------------------------------------------------------------ step
    def after_step(self, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(success, failure) per row, after the engine's generic step; updates the objects and the verifier."""
        if self._library is not None:
            return self._fused_step(actions)
        self._follow_objects(actions)
        # one slot's verdict is a few ops: the compiled graph's call costs more than it saves (GoToObjS4, B = 1024)
        return (self._verdict_step if self.num_slots > 1 else self._verdict)(actions)

    def _fused_step(self, a) -> tuple[torch.Tensor, torch.Tensor]:
        """``_follow_objects`` and ``_verdict`` in one C loop (fused_verifier.c), the same rules and results. It
        reads every tensor by its data pointer: the engine's step makes ``a`` contiguous, its own state is."""
        env, kinds = self.env, self.kinds
        rules = (
            (RULE_FOLLOW if kinds - {I.OPEN} else 0)
            | (RULE_GOTO if I.GOTO in kinds else 0)
            | (RULE_PUTNEXT if I.PUTNEXT in kinds else 0)
            | (RULE_REMEMBERS if I.PICKUP in kinds or I.PUTNEXT in kinds else 0)
            | (RULE_STRICT if self.any_strict else 0)
        )
        success = torch.empty(env.num_envs, dtype=torch.bool)
        failure = torch.empty_like(success)
        pointers = (a, env.step_front, env.step_index, env.agent, env.dir, env._delta, env.grid, self.ids)
        pointers += (self.known, self.goto_cells, self.goto_bits, self.obj_pos)
        self._library.verifier_step(
            env.num_envs, self.ids.shape[1], self.num_slots, rules, *(t.data_ptr() for t in pointers),
            self.state.data_ptr(), self.state.stride(0), self.flags.data_ptr(), self.flags.stride(0),
            *(t.data_ptr() for t in (self._t_picked, self._t_dropped, self._t_opened_box, self._is_door)),
            self._sequence.data_ptr(), self.nowhere, self._neighbours.data_ptr(), success.data_ptr(),
            failure.data_ptr(),
        )  # fmt: skip
        return success, failure

    def _follow_objects(self, a) -> None:
        """The objects' ids, places and the carried id through the step, and the go-to positions a drop refreshes."""
        if not self.kinds - {I.OPEN}:  # doors never move: "open" needs no tracking
            return
        env = self.env
        front, index = env.step_front, env.step_index  # the step's (action, front code, carried code) index
        picked = self._t_picked.index_select(0, index)
        dropped = self._t_dropped.index_select(0, index)
        opened_box = self._t_opened_box.index_select(0, index)
        at = front.unsqueeze(1)
        id_front = torch.gather(self.ids, 1, at).view(-1).long()
        # what the box held (the front cell now; a toggle leaves the direction as it was): no description's
        revealed = torch.where(torch.gather(env.grid, 1, at).view(-1) != C.C_EMPTY, I.UNTRACKED, 0)
        new_id = torch.where(
            picked, 0, torch.where(dropped, self.carry_id, torch.where(opened_box, revealed, id_front))
        )
        if I.PUTNEXT in self.kinds:  # cur_pos: only "put next to" reads it
            moved = torch.where(picked, id_front, torch.where(dropped, self.carry_id, 0))  # id 0's cur_pos: unused
            self.obj_pos.scatter_(1, moved.unsqueeze(1), torch.where(picked, self.nowhere, front).unsqueeze(1))
        self.carry_id.copy_(torch.where(picked, id_front, torch.where(dropped, 0, self.carry_id)))
        self.ids.scatter_(1, at, new_id.to(torch.uint8).unsqueeze(1))
        if I.GOTO not in self.kinds:
            return
        self.goto_cells.scatter_(1, at, torch.gather(self.goto_bits, 1, new_id.unsqueeze(1)))
        # update_objs_poss: every drop action, done or not; where no object moved since the last refresh (or the
        # reset), the known positions are the objects' already: only the other rows are copied
        drop = a == A_DROP
        self.stale |= picked | dropped | opened_box
        refresh = (drop & self.stale).nonzero().squeeze(1)
        self.stale &= ~drop
        if refresh.numel():
            self.known.index_copy_(0, refresh, self.goto_cells.index_select(0, refresh))

    def _verdict(self, a) -> tuple[torch.Tensor, torch.Tensor]:
        env, n, kinds = self.env, self.num_slots, self.kinds
        front = env.front()
        at = front.unsqueeze(1)
        carry_id = self.carry_id.unsqueeze(1)
        a = a.unsqueeze(1)
        kind, mask, pre = self.kind[:, :n], self.mask[:, :n], self.pre[:, :n]
        failure = torch.zeros_like(kind, dtype=torch.bool)
        if I.GOTO in kinds:  # facing one of the positions its description has (or had) objects at
            known = torch.gather(self.known, 1, at).long()
            success = (kind == I.GOTO) & (((known >> self._slots[:n]) & 1) != 0)
        else:
            success = torch.zeros_like(failure)
        if I.OPEN in kinds:  # toggling one of its doors open; strict: toggling any other door fails
            code = torch.gather(env.grid, 1, at).view(-1).long()
            toggle = a == A_TOGGLE
            id_now = torch.gather(self.ids, 1, at).long()
            open_door = ((code >= C.C_DOOR_OPEN0) & (code < C.C_DOOR_OPEN0 + C.N_COLORS)).unsqueeze(1)
            opened = (kind == I.OPEN) & toggle & (((mask >> id_now) & 1) != 0) & open_door
            success |= opened
            if self.any_strict:
                door = self._is_door.index_select(0, code).unsqueeze(1)
                failure |= (kind == I.OPEN) & self.strict[:, :n] & toggle & door & ~opened
        if I.PICKUP in kinds:  # picking up one of its objects with nothing in hand when last asked
            pickup = a == A_PICKUP
            picked = (kind == I.PICKUP) & pickup & (pre == 0) & (((mask >> carry_id) & 1) != 0)
            success |= picked
            if self.any_strict:
                failure |= (kind == I.PICKUP) & self.strict[:, :n] & pickup & (carry_id != 0) & ~picked
        if I.PUTNEXT in kinds:  # dropping what it carried when last asked beside an object of desc_fixed
            is_putnext = kind == I.PUTNEXT
            pos_a = torch.gather(self.obj_pos, 1, pre)  # (B, n)
            around = torch.gather(self.ids, 1, (pos_a.unsqueeze(2) + self._neighbours).view(env.num_envs, -1)).long()
            fixed = self.mask_fixed[:, :n].unsqueeze(2)
            beside = (((fixed >> around.view(env.num_envs, n, 4)) & 1) != 0).any(2)
            success |= is_putnext & (a == A_DROP) & (((mask >> pre) & 1) != 0) & beside
            if self.any_strict:
                failure |= is_putnext & self.strict[:, :n] & (a == A_PICKUP) & (carry_id != 0)
        remembers = I.PICKUP in kinds or I.PUTNEXT in kinds  # preCarrying is read only by these
        if n == 1:  # one action: asked at every step
            if remembers:
                self.pre[:, :1] = carry_id
            return success[:, 0], failure[:, 0]

        # the parts, their ands and the sequence: one lookup (combine's docstring)
        index = (torch.cat([success, failure], 1) * self._verdict_bits).sum(1).bitwise_or_(self.logic)
        out = self._sequence.index_select(0, index)
        self.logic.copy_(out & ((1 << LOGIC_BITS) - 1))
        if remembers:  # preCarrying: set whenever a slot is asked
            asked = ((out.unsqueeze(1) >> (self._slots + LOGIC_BITS + 2)) & 1) != 0
            self.pre.copy_(torch.where(asked, carry_id, self.pre))
        return (out & (1 << LOGIC_BITS)) != 0, (out & (1 << (LOGIC_BITS + 1))) != 0
