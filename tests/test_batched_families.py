"""Every batched MiniGrid family against real Minigrid: state-by-state fidelity for every supported id, the
bank's layouts, and Dynamic-Obstacles' random moves statistically.

The fidelity test copies states of real Minigrid envs into rows of the batched env (sometimes moved on: the
agent teleported to a free cell, an object put in its hands, the step counter near ``max_steps``), steps both
with the same random actions (every action, also those outside a family's action space) and compares image,
direction, mission, reward, terminated and truncated at every step, re-copying after every episode end.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import numpy as np
import pytest
import torch
from minigrid.core.constants import DIR_TO_VEC
from minigrid.core.world_object import Ball, Box, Key

from tests.fidelity import assert_same_step
from torch_rl.envs.minigrid import BatchedMiniGridEnv
from torch_rl.envs.minigrid.codes import ENCODINGS
from torch_rl.envs.minigrid.layouts import make_minigrid_env
from torch_rl.envs.minigrid.registry import ENV_FAMILY, MINIGRID_IDS, make_family
from torch_rl.envs.minigrid.view import PAD

REPO = Path(__file__).resolve().parent.parent

NEW_IDS = [i for i in MINIGRID_IDS if ENV_FAMILY[i] not in ("Empty", "DoorKey")]
# part 2: the object and mission families (their episodes also start facing objects, carrying full boxes, ...)
OBJECT_FAMILIES = (
    "KeyCorridor", "Unlock", "UnlockPickup", "BlockedUnlockPickup", "ObstructedMaze1D", "ObstructedMaze",
    "ObstructedMazeV1", "Fetch", "GoToObject", "GoToDoor", "PutNear", "RedBlueDoors", "Playground",
)  # fmt: skip
TINY_BANK = {"capacity": 64, "initial": 8, "chunk": 8}  # the fidelity tests copy their states in
COLOURS = ["red", "green", "blue", "purple", "yellow", "grey"]
ACTION_P = np.array([0.13, 0.13, 0.36, 0.12, 0.08, 0.14, 0.04])


def _move_on(real, rng, objects=False):
    """Start some episodes elsewhere than reset leaves them, to reach goals, lava, doors and limits sooner
    (``objects``: also facing keys, balls and boxes, beside GoTo's target, carrying PutNear's object next to
    its target, carrying a box that holds a key)."""
    u = real
    free = [cell for cell in _enclosed_cells(u) if u.grid.get(*cell) is None]
    targets = []  # (cell, direction) pairs facing something a rule is about
    if hasattr(u, "success_pos"):  # Memory: next to its success or failure cell
        targets = [(p, d) for p in (u.success_pos, u.failure_pos) for d in range(4)]
    facing = ("door", "lava", "goal") + (("key", "ball", "box") if objects else ())
    near = None
    if objects and hasattr(u, "target_pos"):  # GoTo*, PutNear: beside (GoTo) or around (PutNear) the target
        tx, ty = u.target_pos
        near = {(tx + dx, ty + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)}
    goal_object = getattr(u, "obj", None) if objects else None  # the object to pick up (KeyCorridor, ...)
    for x, y in free:
        for d, (dx, dy) in enumerate(DIR_TO_VEC):
            front = u.grid.get(x + dx, y + dy)
            if front is not None and front.type in facing:
                targets.append(((x, y), d))
            if near is not None and (x + dx, y + dy) in near and (front is None or hasattr(u, "move_type")):
                targets += [((x, y), d)] * 3
    if targets and rng.random() < 0.4:
        cell, u.agent_dir = targets[rng.integers(len(targets))]
        u.agent_pos = tuple(cell)
        if tuple(cell) in (getattr(u, "success_pos", None), getattr(u, "failure_pos", None)):
            u.agent_pos = (cell[0], u.height // 2)  # the junction between them
    elif rng.random() < 0.4:
        u.agent_pos = free[rng.integers(len(free))]
        u.agent_dir = int(rng.integers(4))
    if objects and hasattr(u, "move_type") and rng.random() < 0.5:  # PutNear: the object to move, in hand
        u.carrying = {"key": Key, "ball": Ball, "box": Box}[u.move_type](u.moveColor)
    elif objects and hasattr(u, "box_color") and rng.random() < 0.3:  # ObstructedMaze: a box holding a key
        u.carrying = Box(u.box_color)
        u.carrying.contains = Key(COLOURS[rng.integers(6)])
    elif rng.random() < 0.35:
        colour = COLOURS[rng.integers(6)]
        u.carrying = Key(colour) if rng.random() < 0.7 else Ball(colour)
    if goal_object is not None and rng.random() < 0.3:  # empty-handed, facing the object to pick up
        cell = tuple(int(v) for v in goal_object.cur_pos)
        spots = [((x, y), d) for x, y in free for d, (dx, dy) in enumerate(DIR_TO_VEC) if (x + dx, y + dy) == cell]
        if spots:
            (u.agent_pos, u.agent_dir), u.carrying = spots[rng.integers(len(spots))], None
    if rng.random() < 0.3:
        u.step_count = u.max_steps - int(rng.integers(1, 10))


def _enclosed_cells(u):
    """Cells reachable from the agent without crossing a wall or the grid's border (MultiRoom leaves cells outside
    its rooms empty; GoToDoor's room may be smaller than the grid, with doors in its walls to the outside)."""
    blocking = ("wall", "door") if type(u).__name__ == "GoToDoorEnv" else ("wall",)
    seen, todo = set(), [tuple(int(v) for v in u.agent_pos)]
    while todo:
        x, y = todo.pop()
        if (x, y) in seen or not (0 < x < u.width - 1 and 0 < y < u.height - 1):
            continue
        cell = u.grid.get(x, y)
        if cell is not None and cell.type in blocking:
            continue
        seen.add((x, y))
        todo += [(x + 1, y), (x - 1, y), (x, y + 1), (x, y - 1)]
    return sorted(seen)


# WFC's generator takes about a second per reset: its fidelity runs re-use a few real layouts (deep copies of
# resets, each episode moved on elsewhere by _move_on), and a bank that stops at once (the states are copied in)
SLOW_RESETS = ("WFC",)
_RESET_POOL: dict[str, list] = {}


def _tiny_bank(env_id):
    return {"capacity": 1, "initial": 1, "chunk": 1} if ENV_FAMILY[env_id] in SLOW_RESETS else TINY_BANK


def _reset(real, env_id, seed):
    if ENV_FAMILY[env_id] not in SLOW_RESETS:
        real.reset(seed=seed)
        return
    pool = _RESET_POOL.setdefault(env_id, [])
    if len(pool) < 2:
        real.reset(seed=seed)
        pool.append(copy.deepcopy(real))
    else:
        real.__dict__.update(copy.deepcopy(pool[seed % len(pool)]).__dict__)


def _copy_episode(real, env, i, rng, seed):
    _reset(real, env.env_id, seed)
    _move_on(real, rng, objects=ENV_FAMILY[env.env_id] in OBJECT_FAMILIES)
    env.set_state_from_minigrid(i, real)


def _forced_ball_moves(env, reals):
    return torch.tensor(
        [[(int(b.cur_pos[1]) + PAD) * env.Wp + int(b.cur_pos[0]) + PAD for b in r.obstacles] for r in reals]
    )


def run_fidelity(env_id: str, num_envs: int, num_steps: int, seed: int, device: str = "cpu") -> dict[str, int]:
    rng = np.random.default_rng(seed)
    env = BatchedMiniGridEnv(env_id, num_envs, device=device, seed=seed, bank_options=_tiny_bank(env_id))
    reals = [make_minigrid_env(env_id) for _ in range(num_envs)]
    for i, real in enumerate(reals):
        _copy_episode(real, env, i, rng, seed * 1000 + i)
    obs = env.get_obs()
    for i, real in enumerate(reals):
        np.testing.assert_array_equal(obs["image"][i].cpu().numpy(), real.gen_obs()["image"])
    dynamic = hasattr(reals[0], "obstacles")
    stats = dict(
        steps=0, ends=0, rewards=0, negative=0, pickups=0, toggles=0, failures=0, boxes_opened=0, truncations=0
    )
    episode_seed = seed * 1000 + num_envs
    for t in range(num_steps):
        actions = rng.choice(7, size=num_envs, p=ACTION_P)
        results = []
        for real, a in zip(reals, actions, strict=True):
            carried, cells = real.carrying, [type(o) for o in real.grid.grid] if t % 5 == 0 else None
            front = real.grid.get(*real.front_pos)
            stats["boxes_opened"] += a == 5 and front is not None and getattr(front, "contains", None) is not None
            results.append(real.step(int(a)))
            stats["pickups"] += carried is None and real.carrying is not None
            if cells is not None:
                stats["toggles"] += cells != [type(o) for o in real.grid.grid]
        if dynamic:  # the balls follow the real envs' random moves here; their distribution is tested below
            env.family.forced_moves = _forced_ball_moves(env, reals)
        batched = env.step(torch.as_tensor(actions))
        for i, (real, result) in enumerate(zip(reals, results, strict=True)):
            ro, rr, rte, rtr, _ = result
            ctx = f"{env_id} step {t} env {i} action {actions[i]}"
            assert_same_step(batched, i, result, ctx)
            stats["steps"] += 1
            stats["rewards"] += rr > 0
            stats["negative"] += rr < 0
            stats["failures"] += rte and rr == 0
            stats["truncations"] += rtr
            if rte or rtr:
                stats["ends"] += 1
                episode_seed += 1
                _copy_episode(real, env, i, rng, episode_seed)
                np.testing.assert_array_equal(env.get_obs()["image"][i].cpu().numpy(), real.gen_obs()["image"], ctx)
    env.close()
    return stats


@pytest.mark.parametrize("env_id", NEW_IDS)
def test_fidelity_every_id(env_id):
    if ENV_FAMILY[env_id] in OBJECT_FAMILIES:  # more, shorter episodes: their episodes end more rarely
        stats = run_fidelity(env_id, num_envs=8, num_steps=80, seed=3)
        assert stats["steps"] == 640 and stats["ends"] > 0, stats
        return
    stats = run_fidelity(env_id, num_envs=4, num_steps=120, seed=3)
    assert stats["steps"] == 480 and stats["ends"] > 0, stats
    if ENV_FAMILY[env_id] == "WFC":  # the goal reached (at some step count), not only the step limit
        assert stats["rewards"] > 0, stats


def test_wfc_ids_run_in_plain_minigrid_from_the_shipped_pattern_images():
    """``import torch_rl.envs`` is all a fresh process needs for gym.make of every WFC id to reset (the minigrid
    wheel lacks the images); the images and their notice are in the package."""
    from minigrid.envs.wfc.config import WFC_PRESETS_ALL

    from torch_rl.envs.minigrid.wfc import PATTERN_DIR

    wfc_ids = [i for i in MINIGRID_IDS if ENV_FAMILY[i] == "WFC"]
    assert len(wfc_ids) == 6 and len(MINIGRID_IDS) == 82
    for env_id in wfc_ids:
        config = gym.registry[env_id].kwargs["wfc_config"]  # a name where Minigrid has its own image (a source install)
        config = WFC_PRESETS_ALL[config] if isinstance(config, str) else config
        assert Path(config.pattern_path).is_file(), env_id
    assert "Apache" in (PATTERN_DIR / "NOTICE.md").read_text() and len(list(PATTERN_DIR.glob("*.png"))) == 6
    code = (
        "import gymnasium as gym, torch_rl.envs\n"
        "env = gym.make('MiniGrid-WFC-ObstaclesBlackdots-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(obs['mission'], env.unwrapped.grid.encode()[..., 0].tolist().count([2] * 25))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("traverse the maze to get to the goal 2"), out.stderr


# one id per object family: its success rule, its failure rule where it has one, boxes opened where they hold keys
RULE_EVENTS = {
    "MiniGrid-KeyCorridorS4R3-v0": ("rewards",),  # S3: the ball is reachable only from its doorway
    "MiniGrid-Unlock-v0": ("rewards",),
    "MiniGrid-UnlockPickup-v0": ("rewards", "toggles"),
    "MiniGrid-BlockedUnlockPickup-v0": ("rewards",),
    "MiniGrid-ObstructedMaze-1Dlh-v0": ("rewards", "boxes_opened"),
    "MiniGrid-ObstructedMaze-2Dlhb-v0": ("rewards", "boxes_opened"),
    "MiniGrid-ObstructedMaze-1Q-v1": ("rewards", "boxes_opened"),
    "MiniGrid-Fetch-5x5-N2-v0": ("rewards", "failures"),
    "MiniGrid-GoToObject-6x6-N2-v0": ("rewards", "failures"),
    "MiniGrid-GoToDoor-5x5-v0": ("rewards", "failures"),
    "MiniGrid-PutNear-6x6-N2-v0": ("rewards", "failures"),
    "MiniGrid-RedBlueDoors-6x6-v0": ("rewards", "failures"),
    "MiniGrid-Playground-v0": ("pickups", "toggles"),
}


@pytest.mark.parametrize("env_id", RULE_EVENTS)
def test_fidelity_object_families_reach_their_rules(env_id):
    """Longer runs, asserting each family's success and failure rules really fired (identically in both)."""
    stats = run_fidelity(env_id, num_envs=8, num_steps=300, seed=5)
    for event in RULE_EVENTS[env_id]:
        assert stats[event] > 0, (event, stats)


def test_box_contents_follow_minigrid():
    """A box holding a key, picked up, carried, dropped elsewhere and opened: grid, contents and hands as
    Minigrid's at every step (also the cells out of view)."""
    env_id = "MiniGrid-ObstructedMaze-1Dlh-v0"
    real = gym.make(env_id).unwrapped
    real.reset(seed=0)
    box_cell = next(i for i, o in enumerate(real.grid.grid) if o is not None and o.type == "box")
    bx, by = box_cell % real.width, box_cell // real.width
    spot = next(
        (bx - dx, by - dy, d) for d, (dx, dy) in enumerate(DIR_TO_VEC) if real.grid.get(bx - dx, by - dy) is None
    )
    real.agent_pos, real.agent_dir = (spot[0], spot[1]), spot[2]
    env = BatchedMiniGridEnv(env_id, 1, bank_options=TINY_BANK)
    env.set_state_from_minigrid(0, real)
    # pickup the box, turn around, drop it, pick it up again, drop, open it (the key appears), pick up the key
    for action in (3, 0, 0, 4, 3, 4, 5, 3, 5):
        real.step(action)
        env.step(torch.tensor([action]))
        np.testing.assert_array_equal(env.encode_grid()[0].numpy(), real.grid.encode(), err_msg=str(action))
        contents = env.contents.view(env.Hp, env.Wp)[PAD : PAD + real.height, PAD : PAD + real.width]
        for y in range(real.height):
            for x in range(real.width):
                inside = getattr(real.grid.get(x, y), "contains", None)
                assert ENCODINGS[int(contents[y, x])] == (tuple(inside.encode()) if inside else ENCODINGS[1])
        carried = real.carrying
        assert ENCODINGS[int(env.carry[0])] == (tuple(carried.encode()) if carried else ENCODINGS[1])
        inside = getattr(carried, "contains", None)
        assert ENCODINGS[int(env.carry_contents[0])] == (tuple(inside.encode()) if inside else ENCODINGS[1])
    assert real.carrying is not None and real.carrying.type == "key"  # the script did what it says
    env.close()


@pytest.mark.parametrize("env_id", ["MiniGrid-LockedRoom-v0", "MiniGrid-MemoryS7-v0", "MiniGrid-LavaGapS5-v0"])
def test_fidelity_longer_runs_reach_the_rules(env_id):
    """Longer runs on small ids, asserting the interesting events really happened (not only truncations)."""
    stats = run_fidelity(env_id, num_envs=8, num_steps=400, seed=5)
    assert stats["ends"] > 10, stats
    if "LockedRoom" in env_id:
        assert stats["pickups"] > 0 and stats["toggles"] > 0, stats
    else:
        assert stats["rewards"] > 0, stats


def test_fidelity_fourrooms_long_runs_reach_the_goal_and_the_step_limit():
    """FourRooms (19x19, max_steps 100) step by step over long runs: goals reached at many step counts (the reward
    depends on it) and episodes truncated at max_steps, both identically."""
    stats = run_fidelity("MiniGrid-FourRooms-v0", num_envs=8, num_steps=400, seed=11)
    assert stats["rewards"] > 5 and stats["truncations"] > 5, stats


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
@pytest.mark.parametrize(
    "env_id",
    [
        "MiniGrid-LockedRoom-v0",
        "MiniGrid-MemoryS9-v0",
        "MiniGrid-Dynamic-Obstacles-6x6-v0",
        "MiniGrid-ObstructedMaze-1Dlh-v0",
        "MiniGrid-PutNear-6x6-N2-v0",
    ],
)
def test_fidelity_on_cuda(env_id):
    stats = run_fidelity(env_id, num_envs=8, num_steps=100, seed=7, device="cuda")
    assert stats["ends"] > 0, stats


def test_fidelity_dynamic_obstacles_collisions():
    stats = run_fidelity("MiniGrid-Dynamic-Obstacles-6x6-v0", num_envs=8, num_steps=200, seed=2)
    assert stats["negative"] > 0 and stats["rewards"] > 0, stats


@pytest.mark.parametrize("env_id", MINIGRID_IDS)
def test_family_constants_match_minigrid(env_id):
    family = make_family(env_id)
    real = gym.make(env_id).unwrapped
    real.reset(seed=0)
    assert (family.width, family.height) == (real.width, real.height)
    assert family.max_steps == real.max_steps
    assert family.see_through_walls == real.see_through_walls
    assert family.num_actions == real.action_space.n
    assert family.mission in (None, real.mission)


def test_bank_layouts_are_minigrids_resets():
    env_id = "MiniGrid-LockedRoom-v0"
    env = BatchedMiniGridEnv(env_id, 4, seed=11, bank_options={"capacity": 40, "initial": 40, "chunk": 20})
    bank = env.bank
    assert bank.size == 40 and bank.seed == 11
    real = gym.make(env_id).unwrapped
    for i in (0, 7, 39):
        real.reset(seed=11 + i)
        codes = bank.grid[i].view(bank.height, bank.width).long()
        np.testing.assert_array_equal(torch.tensor(ENCODINGS)[codes].transpose(0, 1).numpy(), real.grid.encode())
        assert tuple(bank.agent[i].tolist()) == tuple(int(v) for v in real.agent_pos)
        assert int(bank.dir[i]) == real.agent_dir
        assert bank.missions[int(bank.mission[i])] == real.mission
    # every reset draws one of the bank's layouts, and the draws are counted
    obs, _ = env.reset(seed=0)
    stats = env.layout_stats()
    assert stats["source"] == "bank" and 1 <= stats["layouts_drawn"] <= 40 and stats["bank_distinct"] == 40
    env.close()


def test_bank_box_contents_are_minigrids():
    env_id = "MiniGrid-ObstructedMaze-2Dlh-v0"
    env = BatchedMiniGridEnv(env_id, 2, seed=5, bank_options={"capacity": 16, "initial": 16, "chunk": 16})
    bank, real = env.bank, gym.make(env_id).unwrapped
    assert bank.contents is not None
    for i in (0, 9, 15):
        real.reset(seed=5 + i)
        inside = bank.contents[i].view(bank.height, bank.width)
        full = 0
        for y in range(bank.height):
            for x in range(bank.width):
                held = getattr(real.grid.get(x, y), "contains", None)
                full += held is not None
                assert ENCODINGS[int(inside[y, x])] == (tuple(held.encode()) if held else ENCODINGS[1])
        assert full == 2  # the keys of the side room's two locked doors, each in a box
    env.close()


def test_bank_draws_repeatable_with_a_seed_and_grow_every():
    opts = {"capacity": 48, "initial": 16, "chunk": 16, "grow_every": 2}

    def rollout():
        env = BatchedMiniGridEnv("MiniGrid-MultiRoom-N2-S4-v0", 8, seed=4, bank_options=opts)
        grids = [env.encode_grid().clone()]
        gen = torch.Generator().manual_seed(0)
        for _ in range(6):
            env.reset()
            grids.append(env.encode_grid().clone())
            env.step(torch.randint(0, 7, (8,), generator=gen))
        sizes = env.bank.size
        env.close()
        return torch.stack(grids), sizes

    g1, s1 = rollout()
    g2, s2 = rollout()
    assert torch.equal(g1, g2) and s1 == s2 == 48


def test_bank_worker_error_is_reported(monkeypatch):
    from torch_rl.envs.minigrid import bank

    def broken(*args):
        args[4].put(("error", "ValueError: no layout"))

    monkeypatch.setattr(bank, "_generate", broken)
    with pytest.raises(RuntimeError, match="no layout"):
        bank.LayoutBank("MiniGrid-FourRooms-v0", capacity=8, initial=8, chunk=8, start_timeout=20)


def _ball_positions(env_or_real, k):
    return [tuple(int(v) for v in b.cur_pos) for b in env_or_real.obstacles][k]


def test_dynamic_obstacles_moves_follow_minigrids_distribution():
    env_id = "MiniGrid-Dynamic-Obstacles-8x8-v0"
    real = gym.make(env_id).unwrapped
    real.reset(seed=3)
    ball = real.obstacles[0].cur_pos  # put the agent beside a ball: it must not move onto the agent's cell
    beside = [(ball[0] + dx, ball[1] + dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    real.agent_pos = next(c for c in beside if real.grid.get(*c) is None and c != tuple(ball))
    N = 6000
    env = BatchedMiniGridEnv(env_id, N, seed=0, bank_options=TINY_BANK)
    env.set_state_from_minigrid(0, real)
    for name in ("grid", "agent", "dir", "carry", "step_count", "task"):
        getattr(env, name)[:] = getattr(env, name)[0]
    env.step(torch.zeros(N, dtype=torch.int64))  # turn left: only the balls move
    batched = env.task.numpy()
    K = batched.shape[1]
    # the same state stepped by Minigrid with N different random streams
    moved = np.empty((2000, K), np.int64)
    for n in range(2000):
        r = copy.deepcopy(real)
        r.np_random = np.random.default_rng(n)
        r.step(0)
        moved[n] = [(int(b.cur_pos[1]) + PAD) * env.Wp + int(b.cur_pos[0]) + PAD for b in r.obstacles]
    for k in range(K):
        cells = np.union1d(batched[:, k], moved[:, k])
        p = np.array([(batched[:, k] == c).mean() for c in cells])
        q = np.array([(moved[:, k] == c).mean() for c in cells])
        assert 0.5 * np.abs(p - q).sum() < 0.05, (k, cells, p, q)
        assert len(cells) > 1  # the balls really move
    env.close()


def test_scripts_train_and_evaluate_batched_on_a_bank_family(tmp_path):
    from tests.test_scripts import run_script

    env_id = "MiniGrid-MultiRoom-N2-S4-v0"
    run_script("train", "--algo", "ppo", "--env", env_id, "--model", "m", "--batched", "--procs", "8",
               "--frames", "2048", "--quiet", storage=tmp_path)  # fmt: skip
    out = run_script("evaluate", "--env", env_id, "--model", "m", "--batched", "--episodes", "8", storage=tmp_path)
    assert "8 episodes" in out.stdout
    bad = run_script("train", "--algo", "ppo", "--env", "CartPole-v1", "--model", "k", "--batched",
                     storage=tmp_path, check=False)  # fmt: skip
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1, bad.stderr
    assert "Dynamic" in bad.stderr and "Memory" in bad.stderr and bad.stderr.startswith("error: ")


def test_scripts_train_and_evaluate_on_wfc_batched_and_plain(tmp_path):
    """WFC from the scripts: batched from a small layout cache (filled ahead, as the README says), and plain
    Minigrid with torch_rl's pattern images."""
    from tests.test_scripts import run_script
    from torch_rl.envs.minigrid.prepare import fill

    env_id = "MiniGrid-WFC-ObstaclesBlackdots-v0"
    assert fill(env_id, 16, seed=1) == (0, 16)  # scripts.train's --seed 1 names the layouts
    train = run_script("train", "--algo", "ppo", "--env", env_id, "--model", "b", "--batched", "--procs", "8",
                       "--frames", "2048", "--quiet", storage=tmp_path)  # fmt: skip
    assert "16 from the layout cache" in train.stderr and "prepare --env" in train.stderr, train.stderr
    out = run_script("evaluate", "--env", env_id, "--model", "b", "--batched", "--episodes", "8", "--seed", "1",
                     storage=tmp_path)  # fmt: skip
    assert "8 episodes" in out.stdout
    run_script("train", "--algo", "ppo", "--env", env_id, "--model", "p", "--procs", "2", "--frames", "256",
               "--quiet", storage=tmp_path)  # fmt: skip
    out = run_script("evaluate", "--env", env_id, "--model", "p", "--episodes", "2", "--procs", "2", storage=tmp_path)
    assert "2 episodes" in out.stdout


# ---------------------------------------------------------------------------
# native generators against Minigrid's distribution
# ---------------------------------------------------------------------------
def _tv(a, b):
    values = np.union1d(a, b)
    return 0.5 * sum(abs((a == v).mean() - (b == v).mean()) for v in values)


def _minigrid_layouts(env_id, count):
    real = gym.make(env_id).unwrapped
    grids, pos, dirs = [], [], []
    for seed in range(count):
        real.reset(seed=seed)
        grids.append(real.grid.encode())
        pos.append(tuple(int(v) for v in real.agent_pos))
        dirs.append(real.agent_dir)
    return np.stack(grids), np.array(pos), np.array(dirs)


def _batched_layouts(env_id, count):
    env = BatchedMiniGridEnv(env_id, count, seed=0)
    assert env.layout_stats() == {"source": "native"}
    return env.encode_grid().numpy(), env.agent_pos.numpy(), env.dir.numpy()


def test_distshift_layouts_are_minigrids():
    for env_id in ("MiniGrid-DistShift1-v0", "MiniGrid-DistShift2-v0"):
        grids, pos, dirs = _batched_layouts(env_id, 4)
        real_grids, real_pos, real_dirs = _minigrid_layouts(env_id, 1)
        assert (grids == real_grids[0]).all() and (pos == real_pos[0]).all() and (dirs == real_dirs[0]).all()


def test_lavagap_layout_distribution():
    env_id, n = "MiniGrid-LavaGapS7-v0", 7
    grids, pos, dirs = _batched_layouts(env_id, 20000)
    real_grids, real_pos, real_dirs = _minigrid_layouts(env_id, 1500)
    assert (pos == [1, 1]).all() and (dirs == 0).all() and (real_pos == [1, 1]).all()

    def gaps(g):
        lava_cols = (g[..., 0] == 9).sum(2).argmax(1)  # the column holding the lava
        column = g[np.arange(len(g)), lava_cols, :, 0]  # (N, H)
        assert ((column[:, 1 : n - 1] == 9).sum(1) == n - 3).all()  # one gap in it
        return lava_cols * 10 + np.argmax(column[:, 1 : n - 1] != 9, axis=1) + 1

    assert (grids[:, n - 2, n - 2] == [8, 1, 0]).all()
    assert _tv(gaps(grids), gaps(real_grids)) < 0.06


def test_fourrooms_layout_distribution():
    env_id = "MiniGrid-FourRooms-v0"
    grids, pos, dirs = _batched_layouts(env_id, 20000)
    real_grids, real_pos, real_dirs = _minigrid_layouts(env_id, 1500)

    def features(g, p):
        obj = g[..., 0]
        goal = np.argwhere(obj == 8)
        assert len(goal) == len(g)
        assert ((obj[:, 1:18, 1:18] == 1).sum((1, 2)) == 259).all()  # 260 free cells, one of them the goal
        return {
            "gap_upper": np.argmax(obj[:, 9, 1:9] != 2, 1),
            "gap_lower": np.argmax(obj[:, 9, 10:18] != 2, 1),
            "gap_left": np.argmax(obj[:, 1:9, 9] != 2, 1),
            "gap_right": np.argmax(obj[:, 10:18, 9] != 2, 1),
            "agent_room": (p[:, 0] > 9) * 2 + (p[:, 1] > 9),
            "agent_x": p[:, 0],
            "agent_y": p[:, 1],
            "goal_x": goal[:, 1],
            "goal_y": goal[:, 2],
        }

    ours, theirs = features(grids, pos), features(real_grids, real_pos)
    for name in ours:
        assert _tv(ours[name], theirs[name]) < 0.08, name
    assert _tv(dirs, real_dirs) < 0.06
    goal = np.argwhere(grids[..., 0] == 8)[:, 1:]
    assert (goal != pos).any(1).all()  # never on the agent's cell

    # the joint placement, which the marginals above do not pin down: how far the goal is and where
    def placement(g, p):
        goal = np.argwhere(g[..., 0] == 8)[:, 1:]
        in_wall = lambda q: (q[:, 0] == 9) | (q[:, 1] == 9)  # noqa: E731  (a gap cell of the dividing walls)
        room = lambda q: (q[:, 0] > 9) * 2 + (q[:, 1] > 9)  # noqa: E731
        return {
            "distance": np.abs(goal - p).sum(1),
            "same_room": (room(goal) == room(p)) & ~in_wall(goal) & ~in_wall(p),
            "agent_in_gap": in_wall(p),
            "goal_in_gap": in_wall(goal),
        }

    ours, theirs = placement(grids, pos), placement(real_grids, real_pos)
    assert _tv(ours["distance"], theirs["distance"]) < 0.1
    for name in ours:  # means within 4 standard errors
        error = np.sqrt(ours[name].var() / len(ours[name]) + theirs[name].var() / len(theirs[name]))
        assert abs(ours[name].mean() - theirs[name].mean()) < 4 * error + 1e-9, (name, ours[name].mean())


def _random_policy_episodes(env_id, episodes, seed=0):
    """(lengths, returns) of random-action episodes, batched (at least ``episodes``: each env's first
    ``episodes / B``, rounded up) and on Minigrid (``episodes // 4``).

    Each env's first episodes, not the first ones to end: those are biased toward short episodes (an env in a long
    episode ends fewer of them; Fetch-5x5: mean length 42 against Minigrid's 52). A full bank from the start: a
    growing bank's draws depend on how far its worker got."""
    B = 256
    bank = {"capacity": 1024, "initial": 1024}
    env = BatchedMiniGridEnv(env_id, B, seed=seed, bank_options=bank)
    gen = torch.Generator().manual_seed(seed)
    steps, ret = torch.zeros(B), torch.zeros(B)
    per_env, ended = -(-episodes // B), torch.zeros(B, dtype=torch.int64)
    lengths, returns = [], []
    while bool((ended < per_env).any()):
        _, rew, term, trunc, _ = env.step(torch.randint(0, env.single_action_space.n, (B,), generator=gen))
        steps += 1
        ret += rew
        done = term | trunc
        kept = done & (ended < per_env)
        lengths += steps[kept].tolist()
        returns += ret[kept].tolist()
        ended += done.long()
        steps[done], ret[done] = 0, 0
    real = gym.make(env_id).unwrapped
    rng = np.random.default_rng(seed)
    real_lengths, real_returns = [], []
    for e in range(episodes // 4):
        real.reset(seed=e)
        length, total, done = 0, 0.0, False
        while not done:
            _, r, te, tr, _ = real.step(int(rng.integers(real.action_space.n)))
            length, total, done = length + 1, total + r, te or tr
        real_lengths.append(length)
        real_returns.append(total)
    return (np.array(lengths), np.array(returns)), (
        np.array(real_lengths),
        np.array(real_returns),
    )


@pytest.mark.parametrize(
    "env_id", ["MiniGrid-FourRooms-v0", "MiniGrid-LavaGapS5-v0", "MiniGrid-Fetch-5x5-N2-v0", "MiniGrid-GoToDoor-5x5-v0"]
)
def test_random_policy_statistics_match_minigrid(env_id):
    (lengths, returns), (real_lengths, real_returns) = _random_policy_episodes(env_id, 1000)
    for ours, theirs in ((lengths, real_lengths), (returns, real_returns), (returns > 0, real_returns > 0)):
        ours, theirs = ours.astype(float), theirs.astype(float)
        error = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * error + 1e-9, (ours.mean(), theirs.mean(), error)


@pytest.mark.parametrize(
    "env_id, layouts", [("MiniGrid-WFC-ObstaclesBlackdots-v0", 24), ("MiniGrid-WFC-MazeSimple-v0", 8)]
)
def test_wfc_random_policy_statistics_match_minigrid(env_id, layouts):
    """Random-action episodes on the same few WFC layouts (Minigrid's resets 0 .. layouts - 1, drawn uniformly: a
    bank of that size, and Minigrid's envs restored from copies of those resets): length, return and success
    rate agree within 4 standard errors. The WFC generator makes about a layout per second, hence so few."""
    B = 1024
    env = BatchedMiniGridEnv(env_id, B, seed=0, bank_options={"capacity": layouts, "initial": layouts})
    gen = torch.Generator().manual_seed(0)
    steps, ret = torch.zeros(B), torch.zeros(B)
    length, returns, ended = torch.zeros(B), torch.zeros(B), torch.zeros(B, dtype=torch.bool)
    for _ in range(env.max_steps):  # every env's first episode has ended by max_steps
        _, rew, term, trunc, _ = env.step(torch.randint(0, 7, (B,), generator=gen))
        steps += 1
        ret += rew
        first = (term | trunc) & ~ended
        length[first], returns[first] = steps[first], ret[first]
        ended |= first
        steps[term | trunc], ret[term | trunc] = 0, 0
    assert ended.all()
    env.close()
    resets = []
    for i in range(layouts):
        real = make_minigrid_env(env_id)
        real.reset(seed=i)
        real.gen_obs = lambda: {}  # only rewards and ends are compared: skip Minigrid's slow observations
        resets.append(real)
    rng = np.random.default_rng(0)
    real_length, real_returns = [], []
    for _ in range(300):
        real = copy.deepcopy(resets[rng.integers(layouts)])
        n, total, done = 0, 0.0, False
        while not done:
            _, r, te, tr, _ = real.step(int(rng.integers(7)))
            n, total, done = n + 1, total + r, te or tr
        real_length.append(n)
        real_returns.append(total)
    real_length, real_returns = np.array(real_length, float), np.array(real_returns)
    assert 0.05 < (real_returns > 0).mean() < 0.95  # both outcomes happen: the comparison can tell them apart
    for ours, theirs in ((length.numpy(), real_length), (returns.numpy(), real_returns),
                         (returns.numpy() > 0, real_returns > 0)):  # fmt: skip
        ours, theirs = ours.astype(float), theirs.astype(float)
        error = np.sqrt(ours.var() / len(ours) + theirs.var() / len(theirs))
        assert abs(ours.mean() - theirs.mean()) < 4 * error + 1e-9, (ours.mean(), theirs.mean(), error)


def test_crossing_layout_distribution():
    # S9N1 has few distinct layouts: compare their whole distribution
    grids, pos, dirs = _batched_layouts("MiniGrid-LavaCrossingS9N1-v0", 10000)
    real_grids, real_pos, _ = _minigrid_layouts("MiniGrid-LavaCrossingS9N1-v0", 2000)
    assert (pos == [1, 1]).all() and (dirs == 0).all() and (real_pos == [1, 1]).all()

    def signature(g):
        return np.array([hash(x.tobytes()) for x in g[..., 0]])

    assert _tv(signature(grids), signature(real_grids)) < 0.12
    # more rivers: where the obstacles and openings are, cell by cell
    for env_id in ("MiniGrid-SimpleCrossingS9N3-v0", "MiniGrid-LavaCrossingS11N5-v0"):
        grids, _, _ = _batched_layouts(env_id, 10000)
        real_grids, _, _ = _minigrid_layouts(env_id, 2000)
        assert np.abs((grids[..., 0] == 1).mean(0) - (real_grids[..., 0] == 1).mean(0)).max() < 0.05, env_id
        assert (grids[:, -2, -2] == [8, 1, 0]).all()


def _layout_signatures(env_id, count, batched):
    """One hashable signature per layout (grid, agent, direction, task positions), batched or Minigrid's."""
    if batched:
        env = BatchedMiniGridEnv(env_id, count, seed=0)
        assert env.layout_stats() == {"source": "native"}
        grids, pos, dirs = env.encode_grid().numpy(), env.agent_pos.numpy(), env.dir.numpy()
        task = torch.stack([env.task % env.Wp - PAD, env.task // env.Wp - PAD], -1).numpy()
    else:
        family = make_family(env_id)
        real = gym.make(env_id).unwrapped
        grids, pos, dirs, task = [], [], [], []
        for seed in range(count):
            real.reset(seed=seed)
            grids.append(real.grid.encode())
            pos.append([int(v) for v in real.agent_pos])
            dirs.append(real.agent_dir)
            task.append(family.task_positions_from_minigrid(real))
        grids, pos, dirs, task = map(np.array, (grids, pos, dirs, task))
    sigs = [
        hash((g.tobytes(), tuple(p), int(d), np.asarray(t).tobytes()))
        for g, p, d, t in zip(grids, pos, dirs, task, strict=True)
    ]
    return np.array(sigs), grids, pos, task


@pytest.mark.parametrize("env_id", ["MiniGrid-MemoryS7-v0", "MiniGrid-MemoryS13Random-v0"])
def test_memory_layout_distribution(env_id):
    ours, grids, pos, task = _layout_signatures(env_id, 10000, batched=True)
    theirs, real_grids, real_pos, real_task = _layout_signatures(env_id, 2000, batched=False)
    if "S7" in env_id:  # 16 layouts: their whole distribution, and nothing Minigrid would not make
        assert np.isin(ours, theirs).all() and _tv(ours, theirs) < 0.08
    mid = grids.shape[2] // 2

    def features(g, p, t):
        return {
            "hallway_end": t[:, 0, 0] - 1,
            "agent_x": p[:, 0],
            "success_above": t[:, 0, 1] < mid,
            "cue": g[:, 1, mid - 1, 0],
            "upper_object": g[np.arange(len(g)), t[:, 0, 0], mid - 2, 0],
        }

    real = features(real_grids, real_pos, real_task)
    for name, values in features(grids, pos, task).items():
        assert _tv(values, real[name]) < 0.06, name
    # the success cell is beside the object matching the cue
    upper = grids[np.arange(len(grids)), task[:, 0, 0], mid - 2, 0]
    assert ((upper == grids[:, 1, mid - 1, 0]) == (task[:, 0, 1] < mid)).all()


@pytest.mark.parametrize("env_id", ["MiniGrid-Dynamic-Obstacles-6x6-v0", "MiniGrid-Dynamic-Obstacles-Random-5x5-v0"])
def test_dynamic_obstacles_layout_distribution(env_id):
    _, grids, pos, task = _layout_signatures(env_id, 10000, batched=True)
    _, real_grids, real_pos, real_task = _layout_signatures(env_id, 2000, batched=False)
    ball_freq = (grids[..., 0] == 6).mean(0)
    assert np.abs(ball_freq - (real_grids[..., 0] == 6).mean(0)).max() < 0.05
    assert _tv(pos[:, 0] * 100 + pos[:, 1], real_pos[:, 0] * 100 + real_pos[:, 1]) < 0.08
    assert _tv(task[:, 0, 0] * 100 + task[:, 0, 1], real_task[:, 0, 0] * 100 + real_task[:, 0, 1]) < 0.1  # 1st ball
    assert (grids[..., 0] == 6).sum((1, 2)).min() == task.shape[1]  # every ball on its own cell


def test_bank_keeps_growing_while_the_env_runs_and_close_ends_its_worker():
    env = BatchedMiniGridEnv(
        "MiniGrid-MultiRoom-N2-S4-v0", 4, seed=0, bank_options={"capacity": 96, "initial": 16, "chunk": 16}
    )
    first = env.layout_stats()["bank_size"]
    deadline = time.perf_counter() + 30
    while env.layout_stats()["bank_size"] < 96 and time.perf_counter() < deadline:
        time.sleep(0.05)
        env.reset()  # resets take in what the worker has sent
    assert first < 96 and env.layout_stats()["bank_size"] == 96
    env.close()
    busy = BatchedMiniGridEnv("MiniGrid-LockedRoom-v0", 2, bank_options={"capacity": 10**5, "initial": 8, "chunk": 8})
    worker = busy.bank._process
    assert worker.is_alive()  # still generating
    busy.close()
    assert not worker.is_alive()


def test_the_bank_worker_ends_when_its_trainer_is_killed():
    """kill -9 of the trainer skips every clean-up: the orphaned worker must notice and stop by itself."""
    code = (
        "import sys, time\n"
        "from torch_rl.envs.minigrid.bank import LayoutBank\n"
        "bank = LayoutBank('MiniGrid-MultiRoom-N2-S4-v0', seed=0, initial=8, chunk=8)\n"
        "print(bank._process.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    trainer = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        worker = int(trainer.stdout.readline())
        assert _alive(worker)
        trainer.kill()
        trainer.wait(timeout=30)
        deadline = time.monotonic() + 60
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the layout worker outlived its killed trainer"
    finally:
        trainer.kill()


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False
