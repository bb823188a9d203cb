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

Speed: a level's instructions often use few of the rules (GoToLocal only ``go to`` of one object, OpenDoor only
``open``), so the verifier works out, from the instructions its rows have held so far (a set that only grows),
which rules, slots and object tracking any row can need, and computes only those.
"""

from __future__ import annotations

from typing import Any

import torch

from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid import instructions as I  # noqa: E741 (the module's name reads as a namespace)
from torch_rl.envs.minigrid.view import PAD

A_PICKUP, A_DROP, A_TOGGLE = 3, 4, 5


class BatchedVerifier:
    """The verifier's state for ``env``'s B rows, and its step."""

    def __init__(self, env: Any):
        B, dev, cells = env.num_envs, env.device, env.Hp * env.Wp
        self.env = env
        self.ids = torch.zeros(B, cells, dtype=torch.uint8, device=dev)
        self.known = torch.zeros(B, cells, dtype=torch.uint8, device=dev)
        self.goto_cells = torch.zeros(B, cells, dtype=torch.uint8, device=dev)  # known bits of the objects now
        self.goto_bits = torch.zeros(B, I.MAX_IDS, dtype=torch.uint8, device=dev)  # id -> slots of its go-tos
        # padded flat cur_pos (a row whose instruction has no "put next to" keeps "nowhere": always in the grid)
        self.obj_pos = torch.full((B, I.MAX_IDS), env.Wp + 1, dtype=torch.int64, device=dev)
        self.carry_id = torch.zeros(B, dtype=torch.int64, device=dev)
        self.sequenced = torch.zeros(B, dtype=torch.bool, device=dev)
        self.strict_sequence = torch.zeros(B, dtype=torch.bool, device=dev)
        self.part_and = torch.zeros(B, 2, dtype=torch.bool, device=dev)
        self.kind = torch.zeros(B, I.NUM_SLOTS, dtype=torch.int64, device=dev)
        self.strict = torch.zeros(B, I.NUM_SLOTS, dtype=torch.bool, device=dev)
        self.mask = torch.zeros(B, I.NUM_SLOTS, dtype=torch.int64, device=dev)
        self.mask_fixed = torch.zeros(B, I.NUM_SLOTS, dtype=torch.int64, device=dev)
        self.pre = torch.zeros(B, I.NUM_SLOTS, dtype=torch.int64, device=dev)
        self.succeeded = torch.zeros(B, I.NUM_SLOTS, dtype=torch.bool, device=dev)  # an and's memo
        self.first_done = torch.zeros(B, dtype=torch.bool, device=dev)
        # (-1, -1), where Minigrid puts a carried object, as a padding cell whose neighbours are padding too
        self.nowhere = env.Wp + 1
        self._slot_bits = torch.tensor([1 << s for s in range(I.NUM_SLOTS)], dtype=torch.uint8, device=dev)
        self._id_range = torch.arange(I.MAX_IDS, device=dev)
        self._neighbours = torch.tensor([1, -1, env.Wp, -env.Wp], device=dev)
        self._slots = torch.arange(I.NUM_SLOTS, device=dev)
        self._is_door = torch.tensor([C.door_of(c) is not None for c in range(C.N_CODES)], device=dev)
        # what the instructions loaded so far use (only grows): leaf kinds, slots, strict rules
        self.kinds: set[int] = set()
        self.num_slots = 1
        self.any_strict = False

    # ------------------------------------------------------------------ state in
    def load(self, rows: torch.Tensor, extras: dict[str, torch.Tensor]) -> None:
        """Rows ``rows`` take the encoded state ``extras`` (:func:`.instructions.encode`, one row per env row).
        What none of these rows' instructions reads (go-to positions, objects' places) is left as it was."""
        env, m = self.env, rows.numel()
        tree = extras["tree"].view(m, 4)
        leaf = extras["leaf"].view(m, I.NUM_SLOTS, 5)
        kind = leaf[..., 0]
        kinds = self._note_rules(kind, tree, leaf[..., 1])
        carry = extras["carry"].view(m, 2)
        env.carry[rows] = carry[:, 0]
        env.limit[rows] = extras["limit"].view(m)
        self.sequenced[rows] = tree[:, 0] != 0
        self.strict_sequence[rows] = tree[:, 1] != 0
        self.part_and[rows] = tree[:, 2:] == I.PART_AND
        self.kind[rows] = kind
        self.strict[rows] = leaf[..., 1] != 0
        self.mask[rows] = leaf[..., 2]
        self.mask_fixed[rows] = leaf[..., 3]
        self.pre[rows] = leaf[..., 4]
        done = extras["done"].view(m, I.NUM_SLOTS + 1) != 0
        self.succeeded[rows] = done[:, : I.NUM_SLOTS]
        self.first_done[rows] = done[:, I.NUM_SLOTS]
        ids = env.pad_cells(extras["ids"].view(m, -1))
        self.ids[rows] = ids
        self.carry_id[rows] = carry[:, 1]
        if I.PUTNEXT in kinds:
            xy = extras["obj_pos"].view(m, I.MAX_IDS, 2)
            flat = (xy[..., 1] + PAD) * env.Wp + xy[..., 0] + PAD
            self.obj_pos[rows] = torch.where(xy[..., 0] < 0, self.nowhere, flat)
        if I.GOTO in kinds:
            self.known[rows] = env.pad_cells(extras["known"].view(m, -1))
            # id -> bits of the go-to slots whose descriptions match it
            member = (leaf[..., 2].unsqueeze(2) >> self._id_range) & 1  # (m, slots, ids)
            goto = (kind == I.GOTO).unsqueeze(2)
            bits = ((member * goto).to(torch.uint8) * self._slot_bits.view(1, -1, 1)).sum(1).to(torch.uint8)
            self.goto_bits[rows] = bits
            self.goto_cells[rows] = torch.gather(bits, 1, ids.long())

    def _note_rules(self, kind, tree, strict) -> set[int]:
        """Adds what these instructions use to the rules computed at each step (one host sync per reset); returns
        their leaf kinds."""
        used = torch.cat([torch.bincount(kind.reshape(-1), minlength=5) > 0, (tree[:, :1] != 0).any(0)])
        used = torch.cat([used, (tree[:, 2:] == I.PART_AND).any().view(1), (strict != 0).any().view(1)])
        used = used.tolist()
        kinds = {k for k in (I.GOTO, I.OPEN, I.PICKUP, I.PUTNEXT) if used[k]}
        self.kinds |= kinds
        if used[5] or used[6]:  # a sequence or an "and": more than one slot
            self.num_slots = I.NUM_SLOTS
        self.any_strict |= used[7]
        return kinds

    # ------------------------------------------------------------------ step
    def before_step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        env = self.env
        return env.front(), env.front_code(), env.carry

    def after_step(self, actions: torch.Tensor, context: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """(success, failure) per row, after the engine's generic step; updates the objects and the verifier."""
        front, front_code, carried = context
        self._follow_objects(actions, front, front_code, carried)
        return self._verdict(actions)

    def _follow_objects(self, a, front, front_code, carried) -> None:
        if not self.kinds - {I.OPEN}:  # doors never move: "open" needs no tracking
            return
        env = self.env
        picked = (a == A_PICKUP) & (carried == C.C_EMPTY) & (env.carry != C.C_EMPTY)
        dropped = (a == A_DROP) & (carried != C.C_EMPTY) & (env.carry == C.C_EMPTY)
        opened_box = (a == A_TOGGLE) & (front_code >= C.C_BOX0) & (front_code < C.C_BOX0 + C.N_COLORS)
        at = front.unsqueeze(1)
        id_front = torch.gather(self.ids, 1, at).view(-1).long()
        revealed = torch.where(env.front_code() != C.C_EMPTY, I.UNTRACKED, 0)  # what the box held: no description's
        new_id = torch.where(
            picked, 0, torch.where(dropped, self.carry_id, torch.where(opened_box, revealed, id_front))
        )
        if I.PUTNEXT in self.kinds:  # cur_pos: only "put next to" reads it
            moved = torch.where(picked, id_front, torch.where(dropped, self.carry_id, 0))  # id 0's cur_pos: unused
            self.obj_pos.scatter_(1, moved.unsqueeze(1), torch.where(picked, self.nowhere, front).unsqueeze(1))
        self.carry_id = torch.where(picked, id_front, torch.where(dropped, 0, self.carry_id))
        self.ids.scatter_(1, at, new_id.to(torch.uint8).unsqueeze(1))
        if I.GOTO in self.kinds:
            self.goto_cells.scatter_(1, at, torch.gather(self.goto_bits, 1, new_id.unsqueeze(1)))
            refresh = (a == A_DROP).nonzero().squeeze(1)  # update_objs_poss: every drop action, done or not
            if refresh.numel():
                self.known.index_copy_(0, refresh, self.goto_cells.index_select(0, refresh))

    def _verdict(self, a) -> tuple[torch.Tensor, torch.Tensor]:
        env, n, kinds = self.env, self.num_slots, self.kinds
        front = env.front()
        at = front.unsqueeze(1)
        carry_id = self.carry_id.unsqueeze(1)
        a = a.unsqueeze(1)
        kind, mask, pre = self.kind[:, :n], self.mask[:, :n], self.pre[:, :n]
        success = torch.zeros_like(kind, dtype=torch.bool)
        failure = torch.zeros_like(success)
        if I.GOTO in kinds:  # facing one of the positions its description has (or had) objects at
            known = torch.gather(self.known, 1, at).long()
            success |= (kind == I.GOTO) & (((known >> self._slots[:n]) & 1) != 0)
        if I.OPEN in kinds:  # toggling one of its doors open; strict: toggling any other door fails
            code = env.front_code()
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

        # parts: part 0 is asked unless it is done; part 1 after it (and, in a strict sequence, alongside it)
        first_done = self.first_done
        ok0, fail0, slots0 = self._part(0, success, failure, ~first_done)
        cont0 = ~ok0 & ~fail0
        called1 = self.sequenced & (first_done | ok0 | (self.strict_sequence & cont0))
        ok1, fail1, slots1 = self._part(1, success, failure, called1)
        if remembers:  # preCarrying: set whenever a slot is asked
            self.pre = torch.where(slots0 | slots1, carry_id, self.pre)
        seq = self.sequenced
        ok = torch.where(seq, torch.where(first_done, ok1, ok0 & ok1), ok0)
        fail = torch.where(
            seq,
            torch.where(first_done, fail1, fail0 | (ok0 & fail1) | (cont0 & self.strict_sequence & ok1)),
            fail0,
        )
        self.first_done = first_done | (seq & ok0)
        return ok, fail

    def _part(self, p, success, failure, called) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(success, failure, slots called (B, slots)) of part ``p`` where ``called``; updates an and's memo."""
        a, b = 2 * p, 2 * p + 1
        is_and = self.part_and[:, p]
        call_a = called & ~(is_and & self.succeeded[:, a])
        call_b = called & is_and & ~self.succeeded[:, b]
        done_a = self.succeeded[:, a] | (call_a & success[:, a])
        done_b = self.succeeded[:, b] | (call_b & success[:, b])
        self.succeeded[:, a] = torch.where(is_and, done_a, self.succeeded[:, a])
        self.succeeded[:, b] = torch.where(is_and, done_b, self.succeeded[:, b])
        ok = called & torch.where(is_and, done_a & done_b, success[:, a])
        fail = called & ~is_and & failure[:, a]
        slots = torch.zeros_like(self.succeeded)
        slots[:, a], slots[:, b] = call_a, call_b
        return ok, fail, slots
