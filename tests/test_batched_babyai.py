"""Batched BabyAI against real Minigrid: every level state by state, the verifier's verdicts reached on purpose,
and the instruction state followed through objects that move.

The fidelity runs copy real envs' states (just reset, sometimes moved on: an object put in the agent's hands, the
step counter near the episode's limit) into rows of the batched env, step both with the same actions and compare
image, direction, mission, reward, terminated and truncated at every step. The actions are mostly Minigrid's own
BabyAI bot's (``minigrid.utils.baby_ai_bot``), so that instructions really get done, sequences half done, and
strict levels failed, and otherwise random.
"""

from __future__ import annotations

import contextlib
import io

import gymnasium as gym
import minigrid  # noqa: F401  (registers the BabyAI-* ids)
import numpy as np
import pytest
import torch
from minigrid.core.world_object import Ball, Key
from minigrid.envs.babyai.core import verifier as V
from minigrid.utils.baby_ai_bot import BabyAIBot

from tests.fidelity import assert_same_step
from torch_rl.envs.minigrid import BatchedMiniGridEnv, verifier
from torch_rl.envs.minigrid.missions import MISSION_WORDS, mission_words
from torch_rl.envs.minigrid.registry import BABYAI_IDS

TINY_BANK = {"capacity": 16, "initial": 4, "chunk": 4}  # the fidelity runs copy their states in
COLOURS = ["red", "green", "blue", "purple", "yellow", "grey"]


def _reset(real, seed):
    with contextlib.redirect_stdout(io.StringIO()):  # "Sampling rejected: ..."
        real.reset(seed=seed)


def _instruction_kinds(instrs):
    """The classes in an instruction tree (``AfterInstr``, ``AndInstr``, ``PickupInstr``, ...)."""
    if isinstance(instrs, V.SeqInstr):
        return [type(instrs).__name__] + _instruction_kinds(instrs.instr_a) + _instruction_kinds(instrs.instr_b)
    return [type(instrs).__name__]


class Player:
    """One real env, its bot, and what its episodes did."""

    def __init__(self, env_id, rng):
        self.real = gym.make(env_id).unwrapped
        self.rng = rng
        self.bot = None

    def new_episode(self, seed, move_on):
        real = self.real
        _reset(real, seed)
        if move_on and self.rng.random() < 0.15:  # something in hand that no description names
            colour = COLOURS[self.rng.integers(6)]
            real.carrying = Key(colour) if self.rng.random() < 0.5 else Ball(colour)
        if move_on and self.rng.random() < 0.2:
            real.step_count = max(0, real.max_steps - int(self.rng.integers(1, 30)))
        self.bot = None

    def action(self, bot_p):
        if self.rng.random() < bot_p:
            try:
                if self.bot is None:
                    self.bot = BabyAIBot(self.real)
                    self.searches = _count_searches(self.bot)
                self.searches[0] = 0
                return int(self.bot.replan())
            except Exception:  # the bot gives up on some states the random actions made: act randomly then
                self.bot = None
        self.bot = None
        return int(self.rng.integers(7))


def _count_searches(bot, limit=100):
    """Ends a bot's replan (with an exception) after ``limit`` path searches: on some states (UnlockToUnlock after
    random actions) its subgoals hand the search back and forth forever."""
    search, calls = bot._breadth_first_search, [0]

    def counted(*args, **kwargs):
        calls[0] += 1
        if calls[0] > limit:
            raise RuntimeError("the bot searched too long")
        return search(*args, **kwargs)

    bot._breadth_first_search = counted
    return calls


def run_fidelity(env_id, num_envs, num_steps, seed, bot_p=0.8, move_on=True, device="cpu", compile=False, fused=None):
    rng = np.random.default_rng(seed)
    env = BatchedMiniGridEnv(
        env_id, num_envs, device=device, seed=seed, bank_options=TINY_BANK, compile=compile, fused=fused
    )
    players = [Player(env_id, rng) for _ in range(num_envs)]
    episode_seed = seed * 1000
    for i, player in enumerate(players):
        player.new_episode(episode_seed + i, move_on)
        env.set_state_from_minigrid(i, player.real)
    episode_seed += num_envs
    obs = env.get_obs()
    for i, player in enumerate(players):
        np.testing.assert_array_equal(obs["image"][i].cpu().numpy(), player.real.gen_obs()["image"])
    stats = {"steps": 0, "successes": 0, "failures": 0, "truncations": 0, "drops": 0, "pickups": 0, "boxes_opened": 0}
    succeeded_kinds: set[str] = set()
    for t in range(num_steps):
        actions = [player.action(bot_p) for player in players]
        results = []
        for player, a in zip(players, actions, strict=True):
            kinds = _instruction_kinds(player.real.instrs)
            carried = player.real.carrying
            front = player.real.grid.get(*player.real.front_pos)
            stats["boxes_opened"] += a == 5 and front is not None and getattr(front, "contains", None) is not None
            results.append((player.real.step(a), kinds))
            stats["pickups"] += carried is None and player.real.carrying is not None
            stats["drops"] += carried is not None and player.real.carrying is None
        batched = env.step(torch.tensor(actions))
        for i, (player, (real, kinds)) in enumerate(zip(players, results, strict=True)):
            ro, rr, rte, rtr, _ = real
            ctx = f"{env_id} step {t} env {i} action {actions[i]} mission {ro['mission']!r}"
            assert_same_step(batched, i, real, ctx)
            stats["steps"] += 1
            if rte and rr > 0:
                stats["successes"] += 1
                succeeded_kinds.update(kinds)
            stats["failures"] += rte and rr == 0
            stats["truncations"] += rtr and not rte
            if rte or rtr:
                player.new_episode(episode_seed, move_on)
                episode_seed += 1
                env.set_state_from_minigrid(i, player.real)
                image = env.get_obs()["image"][i].cpu().numpy()
                np.testing.assert_array_equal(image, player.real.gen_obs()["image"], ctx)
    env.close()
    stats["succeeded_kinds"] = succeeded_kinds
    return stats


@pytest.mark.parametrize("env_id", BABYAI_IDS)
def test_fidelity_every_babyai_id(env_id):
    stats = run_fidelity(env_id, num_envs=4, num_steps=40, seed=3)
    assert stats["steps"] == 160, stats


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize("env_id", ["BabyAI-SynthS5R2-v0", "BabyAI-PutNextS5N2Carrying-v0", "BabyAI-KeyInBox-v0"])
def test_fidelity_on_cuda(env_id):
    stats = run_fidelity(env_id, num_envs=6, num_steps=80, seed=7, device="cuda")
    assert stats["steps"] == 480, stats


# Levels run longer, asserting which verdicts were reached (the same in both, step by step), with how often the
# bot acts: the strict levels fail only when the agent errs
VERDICTS = {
    "BabyAI-GoToLocal-v0": (0.9, ("successes",)),
    "BabyAI-OpenDoorColor-v0": (0.9, ("successes",)),
    "BabyAI-OpenDoorDebug-v0": (0.5, ("successes", "failures")),  # strict: toggling another door fails
    "BabyAI-PickupDistDebug-v0": (0.5, ("successes", "failures")),  # strict: picking up another object fails
    "BabyAI-PutNextLocal-v0": (0.9, ("successes", "drops")),
    "BabyAI-PutNextS5N2Carrying-v0": (0.9, ("successes",)),
    "BabyAI-OpenDoorsOrderN4Debug-v0": (0.5, ("successes", "failures")),  # a sequence of strict opens
    "BabyAI-SynthS5R2-v0": (0.9, ("successes", "pickups", "drops")),
    "BabyAI-BossLevelNoUnlock-v0": (0.9, ("truncations",)),  # step counters moved near their limits
}


@pytest.mark.parametrize("env_id", VERDICTS)
def test_fidelity_reaches_each_verdict(env_id):
    bot_p, events = VERDICTS[env_id]
    stats = run_fidelity(env_id, num_envs=6, num_steps=150, seed=11, bot_p=bot_p)
    for event in events:
        assert stats[event] > 0, (event, stats)


def test_every_instruction_kind_succeeds_alone_and_in_sequences():
    kinds = set()
    for env_id in ("BabyAI-GoToSeqS5R2-v0", "BabyAI-OpenDoorsOrderN2-v0", "BabyAI-SynthS5R2-v0"):
        kinds |= run_fidelity(env_id, num_envs=6, num_steps=150, seed=5, bot_p=0.97, move_on=False)["succeeded_kinds"]
    assert {"GoToInstr", "OpenInstr", "PickupInstr", "PutNextInstr", "BeforeInstr", "AfterInstr", "AndInstr"} <= kinds


def test_vocabulary_covers_babyai_missions():
    longest = 0
    for env_id in BABYAI_IDS:
        real = gym.make(env_id).unwrapped
        for seed in range(3):
            _reset(real, seed)
            words = mission_words(real.mission)
            assert set(words) <= set(MISSION_WORDS), (env_id, real.mission)
            longest = max(longest, len(words))
    env = BatchedMiniGridEnv("BabyAI-BossLevel-v0", 2, seed=0, bank_options=TINY_BANK)
    assert longest <= env.max_mission_words == env.observation_space["mission_tokens"].shape[1]
    env.close()


# ---------------------------------------------------------------------------------------------------------------
# The random policy's episodes, real and batched: the same distribution. Layouts are Minigrid's own resets, drawn
# from a bank; the statistics would differ if the bank's draws, the episode limits, the missions or the verdicts
# did. An episode is followed for its first HORIZON steps (BabyAI's limits run to thousands of steps).
HORIZON = 40
EPISODES = 64
OBJECT_TYPES = (4, 5, 6, 7)  # door, key, ball, box


def _episode_stats(first_image, length, ret, success, failure, limit):
    in_view = float(np.isin(first_image[..., 0], OBJECT_TYPES).sum())
    return [length, ret, success, failure, in_view, limit]


def _real_random_episodes(env_id, episodes, seed):
    rng = np.random.default_rng(seed)
    real = gym.make(env_id).unwrapped
    rows = []
    for k in range(episodes):
        _reset(real, 10**6 + seed * 10**4 + k)
        image, limit = real.gen_obs()["image"], real.max_steps
        ret = success = failure = 0.0
        length = HORIZON
        for t in range(HORIZON):
            _, r, terminated, truncated, _ = real.step(int(rng.integers(7)))
            if terminated or truncated:
                length, ret, success, failure = t + 1, r, float(terminated and r > 0), float(terminated and r == 0)
                break
        rows.append(_episode_stats(image, length, ret, success, failure, limit))
    return np.array(rows)


def _batched_random_episodes(env_id, episodes, seed):
    # a bank of exactly `episodes` layouts, all there before the first draw: the draws are repeatable
    env = BatchedMiniGridEnv(env_id, episodes, seed=seed, bank_options={"capacity": episodes, "initial": episodes})
    gen = torch.Generator().manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    image, limit = obs["image"].numpy(), env.limit.clone()
    length = torch.full((episodes,), HORIZON)
    ret, success, failure = torch.zeros(episodes), torch.zeros(episodes), torch.zeros(episodes)
    running = torch.ones(episodes, dtype=torch.bool)
    for t in range(HORIZON):
        _, r, terminated, truncated, _ = env.step(torch.randint(7, (episodes,), generator=gen))
        ended = running & (terminated | truncated)
        length[ended], ret[ended] = t + 1, r[ended]
        success[ended] = (terminated & (r > 0))[ended].float()
        failure[ended] = (terminated & (r == 0))[ended].float()
        running &= ~ended
    env.close()
    rows = [
        _episode_stats(image[i], int(length[i]), float(ret[i]), float(success[i]), float(failure[i]), int(limit[i]))
        for i in range(episodes)
    ]
    return np.array(rows)


@pytest.mark.parametrize("env_id", BABYAI_IDS)
def test_random_policy_statistics_match_minigrid(env_id):
    real = _real_random_episodes(env_id, EPISODES, seed=1)
    batched = _batched_random_episodes(env_id, EPISODES, seed=2)
    names = ["length", "return", "success", "failure", "objects in view", "limit"]
    for k, name in enumerate(names):
        a, b = real[:, k], batched[:, k]
        se = np.sqrt(a.var() / len(a) + b.var() / len(b))
        # five standard errors (and a floor for statistics that are constant in both samples)
        assert abs(a.mean() - b.mean()) <= 5 * se + 1e-9, (env_id, name, a.mean(), b.mean(), se)


# ---------------------------------------------------------------------------------------------------------------
# Each verdict reached on purpose: the agent is put in front of what the instruction names (or of what makes it
# fail), in the real env and, by copying its state, in the batched one, and both take the same actions.
def _front_cells(real, wanted):
    """(cell, direction) pairs from which the agent faces a cell whose object satisfies ``wanted``."""
    from minigrid.core.constants import DIR_TO_VEC

    spots = []
    for y in range(1, real.height - 1):
        for x in range(1, real.width - 1):
            if real.grid.get(x, y) is not None:
                continue
            for d, (dx, dy) in enumerate(DIR_TO_VEC):
                if wanted(real.grid.get(x + dx, y + dy), (x + dx, y + dy)):
                    spots.append(((x, y), d))
    return spots


class Scripted:
    """A real env and row 0 of a batched env, driven together."""

    def __init__(self, env_id, seed):
        self.env_id, self.seed = env_id, seed
        self.real = gym.make(env_id).unwrapped
        _reset(self.real, seed)
        self._env = None
        self.verdicts = []

    @property
    def env(self):
        """The batched env, made when first used (tests search many seeds for an instruction of a given shape),
        with the real env's state, which no step has changed yet."""
        if self._env is None:
            self._env = BatchedMiniGridEnv(self.env_id, 1, seed=self.seed, bank_options=TINY_BANK)
            self._env.set_state_from_minigrid(0, self.real)
        return self._env

    def face(self, wanted):
        """Moves the agent (in both) to face a cell that ``wanted(obj, (x, y))`` accepts."""
        spots = _front_cells(self.real, wanted)
        assert spots, "nothing to face"
        (x, y), d = spots[0]
        self.real.agent_pos, self.real.agent_dir = (x, y), d
        # only the pose is copied: the rest of the batched state is the batched env's own, from its own steps (its
        # state is changed in inference mode, where the env's steps make it)
        with torch.inference_mode():
            self.env.agent[0], self.env.dir[0] = self.env.flat(x, y), d
        np.testing.assert_array_equal(self.env.get_obs()["image"][0].numpy(), self.real.gen_obs()["image"])

    def act(self, action):
        real = self.real.step(action)
        assert_same_step(self.env.step(torch.tensor([action])), 0, real, f"{self.env_id} action {action}")
        _, rr, rte, rtr, _ = real
        verdict = "success" if rte and rr > 0 else "failure" if rte else "continue"
        self.verdicts.append(verdict)
        return verdict


def _objects(desc):
    return [id(o) for o in desc.obj_set]


def _is(obj_ids):
    return lambda obj, pos: obj is not None and id(obj) in obj_ids


def _other_door(obj_ids):
    return lambda obj, pos: obj is not None and obj.type == "door" and id(obj) not in obj_ids


def test_go_to_succeeds_facing_a_matching_object_with_any_action():
    run = Scripted("BabyAI-GoToLocal-v0", 4)
    run.face(_is(_objects(run.real.instrs.desc)))
    assert run.act(6) == "success"  # "done": any action once the agent faces it


def test_open_succeeds_on_the_named_door_and_strict_open_fails_on_another():
    run = Scripted("BabyAI-OpenDoorColor-v0", 2)
    run.face(_is(_objects(run.real.instrs.desc)))
    assert run.act(5) == "success"
    run = Scripted("BabyAI-OpenDoorDebug-v0", 3)
    target = _objects(run.real.instrs.desc)
    run.face(_other_door(target))
    assert run.act(5) == "failure"
    run = Scripted("BabyAI-OpenDoorDebug-v0", 3)  # the same episode again (new objects: their ids differ)
    run.face(_is(_objects(run.real.instrs.desc)))
    assert run.act(5) == "success"


def test_pickup_succeeds_and_strict_pickup_of_another_object_fails():
    run = Scripted("BabyAI-PickupDistDebug-v0", 1)
    target = _objects(run.real.instrs.desc)
    run.face(lambda obj, pos: obj is not None and obj.type in ("key", "ball", "box") and id(obj) not in target)
    assert run.act(3) == "failure"
    run = Scripted("BabyAI-PickupDistDebug-v0", 1)
    run.face(_is(_objects(run.real.instrs.desc)))
    assert run.act(3) == "success"


def _next_to(positions):
    return lambda obj, pos: obj is None and any(abs(pos[0] - x) + abs(pos[1] - y) == 1 for x, y in positions)


def test_put_next_to_succeeds_where_the_objects_are_now():
    run = Scripted("BabyAI-PutNextLocal-v0", 2)
    instr = run.real.instrs
    run.face(_is(_objects(instr.desc_move)))
    assert run.act(3) == "continue"  # picked up
    fixed = [tuple(int(v) for v in o.cur_pos) for o in instr.desc_fixed.obj_set]
    far = lambda obj, pos: obj is None and all(abs(pos[0] - x) + abs(pos[1] - y) > 1 for x, y in fixed)  # noqa: E731
    run.face(far)
    assert run.act(4) == "continue"  # dropped, but not next to the other object
    run.face(_is(_objects(instr.desc_move)))
    assert run.act(3) == "continue"
    run.face(_next_to(fixed))
    assert run.act(4) == "success"


def test_put_next_to_with_the_object_in_hand_from_the_start():
    run = Scripted("BabyAI-PutNextS5N2Carrying-v0", 6)
    instr = run.real.instrs
    assert run.real.carrying is not None and id(run.real.carrying) in _objects(instr.desc_move)
    fixed = [tuple(int(v) for v in o.cur_pos) for o in instr.desc_fixed.obj_set]
    run.face(_next_to(fixed))
    assert run.act(0) == "continue"  # turning away and back: PutNext remembers what was carried
    assert run.act(1) == "continue"
    assert run.act(4) == "success"


def test_key_in_box_the_key_comes_out_and_opens_the_door():
    run = Scripted("BabyAI-KeyInBox-v0", 0)
    run.face(lambda obj, pos: obj is not None and obj.type == "box")
    assert run.act(5) == "continue"  # the box opens: the key lies in its place
    run.face(lambda obj, pos: obj is not None and obj.type == "key")
    assert run.act(3) == "continue"
    run.face(_is(_objects(run.real.instrs.desc)))
    assert run.act(5) == "success"


def _sequence(env_id, seed, want):
    """A seed of ``env_id`` whose instruction is of the class ``want``."""
    for s in range(seed, seed + 200):
        run = Scripted(env_id, s)
        if type(run.real.instrs).__name__ == want:
            return run
    raise AssertionError(f"no {want} in 200 seeds")


@pytest.mark.parametrize("order", ["BeforeInstr", "AfterInstr"])
def test_a_sequence_needs_its_parts_in_order(order):
    run = _sequence("BabyAI-OpenDoorsOrderN2-v0", 0, order)
    instrs = run.real.instrs
    first, second = (instrs.instr_a, instrs.instr_b) if order == "BeforeInstr" else (instrs.instr_b, instrs.instr_a)
    run.face(_is(_objects(second.desc)))
    assert run.act(5) == "continue"  # the second part first: nothing yet
    assert run.act(5) == "continue"  # closed again
    run.face(_is(_objects(first.desc)))
    assert run.act(5) == "continue"  # the first part: half done
    run.face(_is(_objects(second.desc)))
    assert run.act(5) == "success"


def test_a_strict_sequence_fails_on_the_wrong_door():
    run = _sequence("BabyAI-OpenDoorsOrderN4Debug-v0", 0, "BeforeInstr")
    instrs = run.real.instrs
    run.face(_other_door(_objects(instrs.instr_a.desc)))
    assert run.act(5) == "failure"


def test_and_succeeds_with_both_parts_in_either_order():
    for s in range(300):
        run = Scripted("BabyAI-GoToSeqS5R2-v0", s)
        if isinstance(run.real.instrs, V.AndInstr):
            break
    else:
        raise AssertionError("no 'and' instruction in 300 seeds")
    instrs = run.real.instrs
    run.face(_is(_objects(instrs.instr_b.desc)))
    verdict = run.act(6)
    if verdict != "success":  # one object can match both descriptions
        run.face(_is(_objects(instrs.instr_a.desc)))
        verdict = run.act(6)
    assert verdict == "success"


class _ScriptedLeaf(V.ActionInstr):
    """A leaf whose verdict the test sets for each step; it notes whether its parent asked it."""

    def __init__(self):
        super().__init__()
        self.verdict, self.asked = "continue", False

    def surface(self, env):
        return "a scripted leaf"

    def verify_action(self, action):
        self.asked = True
        return self.verdict


SHAPES = [(None, False, (False, False)), (None, False, (True, False))] + [
    (order, strict, ands)
    for order in ("BeforeInstr", "AfterInstr")
    for strict in (False, True)
    for ands in ((False, False), (True, False), (False, True), (True, True))
]


@pytest.mark.parametrize(("order", "strict", "ands"), SHAPES)
def test_the_sequence_lookup_is_minigrids_and_then_and_after(order, strict, ands):
    """The verifier's one-lookup logic (``verifier.sequence_table``) against Minigrid's own ``AndInstr``,
    ``BeforeInstr`` and ``AfterInstr``, over random runs of the four leaves' verdicts: the same verdict at every
    step, and the same leaves asked (``preCarrying`` is set on those)."""
    table = verifier.sequence_table()
    rng = np.random.default_rng(0)
    for _ in range(300):
        slots = [_ScriptedLeaf() for _ in range(4)]
        parts = [V.AndInstr(slots[2 * p], slots[2 * p + 1]) if ands[p] else slots[2 * p] for p in range(2)]
        if order is None:
            tree = parts[0]
        elif order == "BeforeInstr":
            tree = V.BeforeInstr(parts[0], parts[1], strict=strict)
        else:  # "Y after you X": X, the part done first, is instr_b
            tree = V.AfterInstr(parts[1], parts[0], strict=strict)
        tree.reset_verifier(None)
        word = (order is not None) << verifier.SEQUENCED | strict << verifier.STRICT_SEQUENCE
        word |= ands[0] << verifier.PART_AND | ands[1] << (verifier.PART_AND + 1)
        for step in range(6):
            verdicts = rng.choice(["continue", "success", "failure"], size=4, p=[0.5, 0.3, 0.2])
            for leaf, verdict in zip(slots, verdicts, strict=True):
                leaf.verdict, leaf.asked = verdict, False
            expected = tree.verify(0)
            index = word
            for k, verdict in enumerate(verdicts):
                index |= (verdict == "success") << (verifier.LOGIC_BITS + k)
                index |= (verdict == "failure") << (verifier.LOGIC_BITS + 4 + k)
            out = int(table[index])
            got = (
                "success"
                if out >> verifier.LOGIC_BITS & 1
                else "failure"
                if out >> (verifier.LOGIC_BITS + 1) & 1
                else "continue"
            )
            assert got == expected, (order, strict, ands, step, list(verdicts))
            asked = [bool(out >> (verifier.LOGIC_BITS + 2 + k) & 1) for k in range(4)]
            assert asked == [leaf.asked for leaf in slots], (order, strict, ands, step, list(verdicts))
            if expected != "continue":
                break
            word = out & ((1 << verifier.LOGIC_BITS) - 1)


def test_go_to_counts_where_objects_were_until_a_drop_refreshes_it():
    """Minigrid's ``go to`` checks ``desc.obj_poss``, the positions found at reset and refreshed only when the agent
    drops something (``update_objs_poss``): picking the object up in front succeeds (it "was" there), and an object
    carried away and dropped counts where it lies, not where it was."""
    run = Scripted("BabyAI-GoToLocal-v0", 4)
    run.face(_is(_objects(run.real.instrs.desc)))
    assert run.act(3) == "success"  # picked up: its old cell still counts

    for s in range(500):  # "go to A, then go to B" with one object B, A's and B's objects apart
        run = Scripted("BabyAI-GoToSeqS5R2-v0", s)
        instrs = run.real.instrs
        if not (isinstance(instrs, V.BeforeInstr) and isinstance(instrs.instr_a, V.GoToInstr)):
            continue
        if not isinstance(instrs.instr_b, V.GoToInstr):
            continue
        a, b = instrs.instr_a.desc.obj_set, instrs.instr_b.desc.obj_set
        if len(b) == 1 and b[0].type != "door" and not {id(o) for o in a} & {id(b[0])}:
            break
    else:
        raise AssertionError("no fitting sequence in 500 seeds")
    target = b[0]
    old = tuple(int(v) for v in target.cur_pos)
    near_a = {
        (int(o.cur_pos[0]) + dx, int(o.cur_pos[1]) + dy) for o in a for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1))
    }
    run.face(lambda obj, pos: obj is target and pos not in near_a)
    assert run.act(3) == "continue"  # B picked up while A is not done: B's instruction is not asked yet
    run.face(lambda obj, pos: obj is None and pos != old and pos not in near_a)
    assert run.act(4) == "continue"  # dropped elsewhere: the positions are refreshed
    run.face(_is(_objects(instrs.instr_a.desc)))
    assert run.act(6) == "continue"  # A done, B not yet
    run.face(lambda obj, pos: pos == old)
    assert run.act(6) == "continue"  # where B was: no longer counts
    run.face(_is({id(target)}))
    assert run.act(6) == "success"


def _first_then(env_id, first_kinds, then_kind, seeds=2000):
    """A Scripted run of ``env_id`` whose instruction is "X, then Y" (or "Y after you X") with X one action of
    ``first_kinds`` and Y one action of ``then_kind`` on one object that is not a door, apart from X's objects."""
    for s in range(seeds):
        run = Scripted(env_id, s)
        instrs = run.real.instrs
        if isinstance(instrs, V.BeforeInstr):
            first, then = instrs.instr_a, instrs.instr_b
        elif isinstance(instrs, V.AfterInstr):
            first, then = instrs.instr_b, instrs.instr_a
        else:
            continue
        if not (isinstance(first, first_kinds) and isinstance(then, then_kind)):
            continue
        objs = (then.desc_move if isinstance(then, V.PutNextInstr) else then.desc).obj_set
        if len(objs) == 1 and objs[0].type != "door" and id(objs[0]) not in _objects(first.desc):
            return run, first, then, objs[0]
    raise AssertionError(f"no fitting sequence in {seeds} seeds of {env_id}")


def test_pickup_asked_late_remembers_what_was_carried_when_last_asked():
    """``PickupInstr`` succeeds on a pickup action only if nothing was carried when it was last asked. Asked for
    the first time (``preCarrying`` None) with its object already in hand, a pickup action succeeds, though the
    agent picks nothing up; asked once before with the object in hand, it does not."""
    for last_action, verdict in ((3, "success"), (6, "continue")):
        run, first, _, target = _first_then("BabyAI-SynthSeq-v0", V.GoToInstr, V.PickupInstr)
        run.face(lambda obj, pos, target=target: obj is target)
        assert run.act(3) == "continue"  # picked up before its turn: not asked
        run.face(_is(_objects(first.desc)))
        assert run.act(last_action) == verdict  # the first part done: the pickup is asked
        if verdict == "continue":
            assert run.act(3) == "continue"  # asked before, with the object in hand


def test_scripts_train_batched_with_text_then_evaluate_on_both_backends_with_a_clean_log(tmp_path):
    """The starter files on a BabyAI level: batched training reads the mission tokens; evaluation runs on the
    real env and on the batched one; neither prints the level generator's "Sampling rejected" lines."""
    from tests.test_scripts import run_script

    env_id = "BabyAI-GoToSeqS5R2-v0"  # rejection sampling: its generator prints while it makes layouts
    out = run_script("train", "--algo", "ppo", "--env", env_id, "--model", "b", "--batched", "--text",
                     "--procs", "8", "--frames", "2048", storage=tmp_path)  # fmt: skip
    assert "Sampling rejected" not in out.stdout + out.stderr
    plain = run_script("train", "--algo", "ppo", "--env", env_id, "--model", "p", "--text", "--procs", "2",
                       "--frames", "2048", "--workers", "0", storage=tmp_path)  # fmt: skip
    assert "Sampling rejected" not in plain.stdout + plain.stderr
    for backend in ([], ["--batched"]):
        result = run_script("evaluate", "--env", env_id, "--model", "b", "--episodes", "8", *backend, storage=tmp_path)
        assert "8 episodes" in result.stdout and "Sampling rejected" not in result.stdout + result.stderr
