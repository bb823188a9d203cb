"""FastMiniGridObs must produce exactly Minigrid's observations (and leave everything else alone)."""

import gymnasium as gym
import numpy as np
import pytest

minigrid = pytest.importorskip("minigrid")

from minigrid.core.grid import Grid  # noqa: E402
from minigrid.core.world_object import Ball, Box, Door, Key, Wall  # noqa: E402
from minigrid.minigrid_env import MiniGridEnv  # noqa: E402

from torch_rl.envs import fast_obs  # noqa: E402
from torch_rl.envs.fast_obs import FastMiniGridObs, make_fast  # noqa: E402

# Actions: left, right, forward, pickup, drop, toggle, done. Biased toward
# forward/pickup/drop/toggle so that objects move and doors open/close.
ACTION_P = np.array([0.12, 0.12, 0.34, 0.14, 0.10, 0.16, 0.02])

# (env id, make kwargs, force see_through_walls (None: env default), steps)
CASES = [
    ("MiniGrid-DoorKey-5x5-v0", {}, None, 1500),
    ("MiniGrid-DoorKey-8x8-v0", {}, None, 1000),
    ("MiniGrid-DoorKey-8x8-v0", {"agent_view_size": 5}, None, 500),
    ("MiniGrid-DoorKey-5x5-v0", {"agent_view_size": 3}, None, 300),
    ("MiniGrid-DoorKey-8x8-v0", {"agent_view_size": 9}, None, 400),
    ("MiniGrid-DoorKey-5x5-v0", {}, True, 300),
    ("MiniGrid-Empty-5x5-v0", {}, None, 300),
    ("MiniGrid-Empty-Random-5x5-v0", {}, False, 300),
    ("MiniGrid-MultiRoom-N2-S4-v0", {}, None, 400),
    ("MiniGrid-KeyCorridorS3R1-v0", {}, None, 500),
    ("MiniGrid-LavaGapS5-v0", {}, None, 400),
    ("MiniGrid-MemoryS7-v0", {}, None, 500),
    ("MiniGrid-GoToDoor-5x5-v0", {}, None, 300),
    ("MiniGrid-GoToDoor-5x5-v0", {}, False, 300),
    ("MiniGrid-Unlock-v0", {}, None, 600),
    ("MiniGrid-UnlockPickup-v0", {}, None, 600),
    ("MiniGrid-BlockedUnlockPickup-v0", {}, None, 500),
    ("MiniGrid-Fetch-5x5-N2-v0", {}, False, 400),
    ("MiniGrid-RedBlueDoors-6x6-v0", {}, None, 600),
    ("MiniGrid-ObstructedMaze-1Dl-v0", {}, None, 600),
    ("MiniGrid-DistShift1-v0", {}, None, 300),
    ("MiniGrid-LockedRoom-v0", {}, None, 500),
    ("MiniGrid-Dynamic-Obstacles-5x5-v0", {}, None, 400),
    ("MiniGrid-Dynamic-Obstacles-5x5-v0", {}, False, 300),
    ("MiniGrid-FourRooms-v0", {}, None, 500),
    ("MiniGrid-PutNear-6x6-N2-v0", {}, False, 300),
    ("MiniGrid-LavaCrossingS9N1-v0", {}, None, 300),
    ("BabyAI-OpenDoorsOrderN4-v0", {}, None, 300),
]


def _obs_mismatch(o1, o2):
    """None if the two observations are identical, else a description."""
    if set(o1) != set(o2):
        return f"keys {sorted(o1)} != {sorted(o2)}"
    for k in o1:
        a, b = o1[k], o2[k]
        if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
            if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
                return f"{k}: type {type(a)} != {type(b)}"
            if a.dtype != b.dtype or a.shape != b.shape or not np.array_equal(a, b):
                return f"{k}: {a.dtype}{a.shape} != {b.dtype}{b.shape} or values differ"
        elif type(a) is not type(b) or a != b:
            return f"{k}: {a!r} != {b!r}"
    return None


def _make(env_id, kwargs, stw):
    env = gym.make(env_id, **kwargs)
    if stw is not None:
        env.unwrapped.see_through_walls = stw
    return env


def _run_pair(env_id, kwargs, stw, steps, seed=0):
    """Step a plain and a wrapped env in lockstep; return the first mismatch (or None)."""
    ref = _make(env_id, kwargs, stw)
    fast = FastMiniGridObs(_make(env_id, kwargs, stw))
    assert fast.fast, fast.reason
    rng = np.random.default_rng(seed)
    o1, _ = ref.reset(seed=seed)
    o2, _ = fast.reset(seed=seed)
    if (m := _obs_mismatch(o1, o2)) is not None:
        return f"reset: {m}"
    episodes = 0
    for t in range(steps):
        a = int(rng.choice(len(ACTION_P), p=ACTION_P))
        o1, r1, te1, tr1, _ = ref.step(a)
        o2, r2, te2, tr2, _ = fast.step(a)
        if (m := _obs_mismatch(o1, o2)) is not None:
            return f"step {t} action {a}: {m}"
        if (r1, te1, tr1) != (r2, te2, tr2):
            return f"step {t}: (reward, terminated, truncated) {(r1, te1, tr1)} != {(r2, te2, tr2)}"
        if te1 or tr1:
            episodes += 1
            s = seed + 1000 + episodes
            o1, _ = ref.reset(seed=s)
            o2, _ = fast.reset(seed=s)
            if (m := _obs_mismatch(o1, o2)) is not None:
                return f"reset {episodes}: {m}"
    ref.close()
    fast.close()
    return None


@pytest.mark.parametrize("env_id,kwargs,stw,steps", CASES, ids=[f"{c[0]}-{c[1]}-stw{c[2]}" for c in CASES])
def test_identical_to_minigrid(env_id, kwargs, stw, steps):
    assert _run_pair(env_id, kwargs, stw, steps) is None


def test_objects_move_and_doors_change():
    """The random policy really exercises pickups, drops and door toggles (sanity of the test itself)."""
    env = FastMiniGridObs(gym.make("MiniGrid-DoorKey-5x5-v0"))
    u = env.unwrapped
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    carried = door_open_seen = 0
    for _ in range(1500):
        _, _, te, tr, _ = env.step(int(rng.choice(7, p=ACTION_P)))
        carried += u.carrying is not None
        door_open_seen += any(isinstance(o, Door) and o.is_open for o in u.grid.grid)
        if te or tr:
            env.reset()
    assert carried > 50 and door_open_seen > 50


def test_direct_gen_obs_on_random_grids():
    """fast_gen_obs == MiniGridEnv.gen_obs on random grids full of all object kinds, every pose."""
    env = gym.make("MiniGrid-DoorKey-8x8-v0").unwrapped
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    makers = [
        lambda: None,
        lambda: None,
        lambda: None,
        Wall,
        lambda: Wall("red"),
        lambda: Door("yellow", is_open=True),
        lambda: Door("blue"),
        lambda: Door("green", is_locked=True),
        lambda: Key("red"),
        lambda: Ball("purple"),
        lambda: Box("grey"),
        minigrid.core.world_object.Lava,
        minigrid.core.world_object.Goal,
        lambda: minigrid.core.world_object.Floor("blue"),
    ]
    for trial in range(60):
        W, H = int(rng.integers(3, 13)), int(rng.integers(3, 13))
        env.grid = Grid(W, H)
        for k in range(W * H):
            env.grid.grid[k] = makers[rng.integers(len(makers))]()
        env.see_through_walls = bool(trial % 4 == 3)
        env.carrying = [None, Key("blue"), Ball("red"), Box("green")][trial % 4]
        for _ in range(8):
            env.agent_pos = (int(rng.integers(W)), int(rng.integers(H)))
            env.agent_dir = int(rng.integers(4))
            m = _obs_mismatch(MiniGridEnv.gen_obs(env), fast_obs.fast_gen_obs(env))
            assert m is None, (trial, W, H, env.agent_pos, env.agent_dir, m)


class _Glass(Wall):
    """A custom object: a wall one can see through (exercises the generic encode/see_behind path)."""

    def see_behind(self):
        return True

    def encode(self):
        return (2, 3, 1)


def test_custom_objects_generic_path():
    ref = gym.make("MiniGrid-DoorKey-8x8-v0").unwrapped
    fast = FastMiniGridObs(gym.make("MiniGrid-DoorKey-8x8-v0"))
    ref.reset(seed=3)
    fast.reset(seed=3)
    for e in (ref, fast.unwrapped):
        for k, o in enumerate(e.grid.grid):
            if isinstance(o, Wall) and k % 3 == 0:
                e.grid.grid[k] = _Glass()
    rng = np.random.default_rng(3)
    for t in range(300):
        a = int(rng.choice(7, p=ACTION_P))
        o1 = ref.step(a)[0]
        o2 = fast.step(a)[0]
        assert _obs_mismatch(o1, o2) is None, t


def test_detects_a_broken_implementation(monkeypatch):
    """The comparison can fail: break the visibility or geometry and it must report a mismatch."""

    def all_visible(V, m0, t):
        return (1 << V) - 1, (1 << V) - 1

    monkeypatch.setattr(fast_obs, "_row_transition", all_visible)
    monkeypatch.setattr(fast_obs, "_VIS_MEMO", {})
    assert _run_pair("MiniGrid-DoorKey-8x8-v0", {}, None, 300) is not None
    monkeypatch.undo()

    monkeypatch.setattr(fast_obs, "_VIS_MEMO", {})
    monkeypatch.setattr(fast_obs, "_GEOM", {})
    real = fast_obs._offsets

    def mirrored(V):
        offs, p, c = real(V)
        return tuple((dx[::-1].copy(), dy) for dx, dy in offs), p, c

    monkeypatch.setattr(fast_obs, "_offsets", mirrored)
    assert _run_pair("MiniGrid-DoorKey-5x5-v0", {}, None, 300) is not None


def test_fallbacks_and_noop():
    # Non-Minigrid env: make_fast returns it as is; the wrapper is a transparent no-op.
    cp = gym.make("CartPole-v1")
    assert make_fast(cp) is cp
    w = FastMiniGridObs(gym.make("CartPole-v1"))
    assert not w.fast
    o1, _ = w.reset(seed=0)
    o2, _ = gym.make("CartPole-v1").reset(seed=0)
    assert np.array_equal(o1, o2)
    with pytest.raises(ValueError):
        FastMiniGridObs(gym.make("CartPole-v1"), strict=True)

    # A Minigrid subclass with its own gen_obs: refused (strict) or left on Minigrid's path.
    class Custom(minigrid.envs.EmptyEnv):
        def gen_obs(self):
            obs = super().gen_obs()
            obs["extra"] = 1
            return obs

    w = FastMiniGridObs(Custom())
    assert not w.fast and "gen_obs" in w.reason
    assert w.reset(seed=0)[0]["extra"] == 1
    with pytest.raises(ValueError, match="gen_obs"):
        FastMiniGridObs(Custom(), strict=True)

    # A custom Grid class at step time: falls back to Minigrid's gen_obs.
    class MyGrid(Grid):
        pass

    w = make_fast(gym.make("MiniGrid-DoorKey-5x5-v0"))
    assert w.fast
    w.reset(seed=0)
    u = w.unwrapped
    g = MyGrid(u.width, u.height)
    g.grid = list(u.grid.grid)
    u.grid = g
    assert _obs_mismatch(u.gen_obs(), MiniGridEnv.gen_obs(u)) is None

    # close() removes the patch.
    assert "gen_obs" in u.__dict__
    w.close()
    assert "gen_obs" not in u.__dict__


def test_render_untouched():
    ref = gym.make("MiniGrid-DoorKey-5x5-v0", render_mode="rgb_array")
    fast = FastMiniGridObs(gym.make("MiniGrid-DoorKey-5x5-v0", render_mode="rgb_array"))
    ref.reset(seed=5)
    fast.reset(seed=5)
    for a in [2, 1, 2, 3, 0, 2, 5]:
        ref.step(a)
        fast.step(a)
    assert np.array_equal(ref.render(), fast.render())
    ref.unwrapped.agent_pov = fast.unwrapped.agent_pov = True
    assert np.array_equal(ref.render(), fast.render())


def test_pickle_roundtrip_keeps_fast_path():
    import pickle

    env = FastMiniGridObs(gym.make("MiniGrid-DoorKey-5x5-v0"))
    env.reset(seed=0)
    env2 = pickle.loads(pickle.dumps(env))
    u = env2.unwrapped
    assert u.gen_obs.func is fast_obs.fast_gen_obs and u.gen_obs.args[0] is u
    for a in [2, 1, 2, 3, 5, 2]:
        o = env2.step(a)[0]
        assert _obs_mismatch(o, MiniGridEnv.gen_obs(u)) is None


def test_actions_keep_the_enum_members_and_are_restored_on_close():
    from minigrid.core.actions import Actions

    env = make_fast(gym.make("MiniGrid-DoorKey-5x5-v0"))
    actions = env.unwrapped.actions
    assert actions is not Actions  # the plain-lookup stand-in
    assert [actions.left, actions.toggle, actions.done] == [Actions.left, Actions.toggle, Actions.done]
    assert list(actions) == list(Actions) and len(actions) == len(Actions) and actions(2) is Actions.forward
    env.close()
    assert env.unwrapped.actions is Actions
