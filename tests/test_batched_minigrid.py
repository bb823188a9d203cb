"""Fidelity and API tests of torch_rl.envs.batched_minigrid.BatchedMiniGridEnv.

The fidelity tests copy the state of real Minigrid envs into rows of the
batched env and step both with the same (biased) random actions, comparing
image, direction, reward, terminated and truncated at every step.
"""

from __future__ import annotations

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import numpy as np
import pytest
import torch

from torch_rl.envs.batched_minigrid import SUPPORTED_ENV_IDS, BatchedMiniGridEnv
from torch_rl.envs.minigrid.registry import BABYAI_IDS, MINIGRID_IDS

# forward / pickup / toggle favoured so keys get picked up, doors opened and goals reached
ACTION_P = np.array([0.14, 0.14, 0.34, 0.13, 0.06, 0.14, 0.05])
ACTION_P = ACTION_P / ACTION_P.sum()


def _row(obs, i):
    return obs["image"][i].cpu().numpy(), int(obs["direction"][i]), obs["mission"][i]


def _new_episode(real, env, i, rng, seed=None, p_fast_forward=0.25):
    """Reset a real env, sometimes fast-forward its step counter, copy it into row i."""
    real.reset(seed=seed)
    u = real.unwrapped
    if rng.random() < p_fast_forward:  # exercise truncation without waiting max_steps steps
        u.step_count = u.max_steps - int(rng.integers(1, 15))
    doors = [
        (x, y)
        for x in range(u.width)
        for y in range(u.height)
        if u.grid.get(x, y) is not None and u.grid.get(x, y).type == "door"
    ]
    if doors and rng.random() < 0.4:
        # start some DoorKey episodes further along: key in hand and/or door unlocked
        door = u.grid.get(*doors[0])
        if rng.random() < 0.5:
            keys = [
                (x, y)
                for x in range(u.width)
                for y in range(u.height)
                if u.grid.get(x, y) is not None and u.grid.get(x, y).type == "key"
            ]
            u.carrying = u.grid.get(*keys[0])
            u.grid.set(*keys[0], None)
        else:
            door.is_locked = False
            door.is_open = bool(rng.random() < 0.5)
    env.set_state_from_minigrid(i, real)


def run_fidelity(env_id, num_envs, num_steps, seed, compile=False, fused=None):
    rng = np.random.default_rng(seed)
    env = BatchedMiniGridEnv(env_id, num_envs, seed=seed, compile=compile, fused=fused)
    reals = [gym.make(env_id).unwrapped for _ in range(num_envs)]
    for i, real in enumerate(reals):
        _new_episode(real, env, i, rng, seed=seed * 100 + i, p_fast_forward=0.5)
    obs0 = env.get_obs()
    for i, real in enumerate(reals):
        ro = real.gen_obs()
        img, d, mission = _row(obs0, i)
        np.testing.assert_array_equal(img, ro["image"])
        assert d == ro["direction"] and mission == ro["mission"]

    stats = dict(goals=0, truncs=0, pickups=0, drops=0, toggles=0, steps=0)
    for t in range(num_steps):
        actions = rng.choice(7, size=num_envs, p=ACTION_P)
        # alternate the accepted action containers
        batch_actions = torch.as_tensor(actions) if t % 2 else actions
        obs, rew, term, trunc, info = env.step(batch_actions)
        assert rew.dtype == torch.float32 and term.dtype == torch.bool and trunc.dtype == torch.bool
        for i, real in enumerate(reals):
            carried_before = real.carrying
            doors_before = [o.is_open for o in real.grid.grid if o is not None and o.type == "door"]
            ro, rr, rte, rtr, _ = real.step(int(actions[i]))
            stats["steps"] += 1
            ended = rte or rtr
            src = info["final_obs"] if ended else obs
            img, d, mission = _row(src, i)
            ctx = f"{env_id} step {t} env {i} action {actions[i]}"
            np.testing.assert_array_equal(img, ro["image"], err_msg=ctx)
            assert d == ro["direction"], ctx
            assert mission == ro["mission"], ctx
            assert np.float32(rr) == rew[i].item(), ctx
            assert bool(term[i]) == rte, ctx
            assert bool(trunc[i]) == rtr, ctx
            if ended:
                assert bool(info["_final_obs"][i]), ctx
            else:
                assert "_final_obs" not in info or not bool(info["_final_obs"][i]), ctx
            stats["goals"] += rr > 0
            stats["truncs"] += rtr
            stats["pickups"] += carried_before is None and real.carrying is not None
            stats["drops"] += carried_before is not None and real.carrying is None
            doors_after = [o.is_open for o in real.grid.grid if o is not None and o.type == "door"]
            stats["toggles"] += doors_before != doors_after
            if ended:
                _new_episode(real, env, i, rng)
                img, d, _ = _row(env.get_obs(), i)
                np.testing.assert_array_equal(img, real.gen_obs()["image"], err_msg=ctx)
    return stats


FIDELITY_CASES = [
    ("MiniGrid-Empty-5x5-v0", 300),
    ("MiniGrid-Empty-Random-5x5-v0", 300),
    ("MiniGrid-Empty-6x6-v0", 300),
    ("MiniGrid-Empty-Random-6x6-v0", 300),
    ("MiniGrid-Empty-8x8-v0", 300),
    ("MiniGrid-Empty-16x16-v0", 200),
    ("MiniGrid-DoorKey-5x5-v0", 700),
    ("MiniGrid-DoorKey-6x6-v0", 700),
    ("MiniGrid-DoorKey-8x8-v0", 600),
    ("MiniGrid-DoorKey-16x16-v0", 200),
]


@pytest.mark.parametrize("env_id,num_steps", FIDELITY_CASES)
def test_fidelity_against_minigrid(env_id, num_steps):
    stats = run_fidelity(env_id, num_envs=8, num_steps=num_steps, seed=1)
    assert stats["steps"] >= 1600
    assert stats["truncs"] > 0
    if "16x16" not in env_id and "DoorKey-8x8" not in env_id:
        assert stats["goals"] > 0, stats
    if "DoorKey" in env_id and "16x16" not in env_id:
        # the action sequences really exercised pickup, drop and door toggling
        assert stats["pickups"] > 0 and stats["drops"] > 0 and stats["toggles"] > 0, stats


def test_set_state_roundtrip():
    env = BatchedMiniGridEnv("MiniGrid-DoorKey-8x8-v0", 3, seed=0)
    real = gym.make("MiniGrid-DoorKey-8x8-v0").unwrapped
    real.reset(seed=5)
    env.set_state_from_minigrid(1, real)
    np.testing.assert_array_equal(env.encode_grid()[1].numpy(), real.grid.encode())
    assert tuple(env.agent_pos[1].tolist()) == tuple(int(v) for v in real.agent_pos)
    assert int(env.dir[1]) == real.agent_dir


def test_autoreset_same_step_final_obs():
    env_id = "MiniGrid-Empty-5x5-v0"  # deterministic start: (1,1) facing right, goal (3,3)
    env = BatchedMiniGridEnv(env_id, 3, seed=0)
    obs0, info0 = env.reset(seed=0)
    assert info0 == {}
    real = gym.make(env_id).unwrapped
    real.reset(seed=0)
    # env 0 walks to the goal; envs 1, 2 turn in place
    plan = [2, 2, 1, 2, 2]
    for k, a in enumerate(plan):
        obs, rew, term, trunc, info = env.step(np.array([a, 0, 1]))
        ro, rr, rte, rtr, _ = real.step(a)
        if k < len(plan) - 1:
            assert info == {} and not term.any()
    assert rte and rr == pytest.approx(1 - 0.9 * 5 / 100)
    assert term.tolist() == [True, False, False] and not trunc.any()
    assert rew[0].item() == np.float32(rr) and rew[1].item() == 0.0
    assert info["_final_obs"].tolist() == [True, False, False]
    assert info["_final_obs"].dtype == torch.bool
    np.testing.assert_array_equal(info["final_obs"]["image"][0].numpy(), ro["image"])
    assert int(info["final_obs"]["direction"][0]) == 1
    # the returned observation of env 0 is the first one of the new episode
    np.testing.assert_array_equal(obs["image"][0].numpy(), obs0["image"][0].numpy())
    assert int(obs["direction"][0]) == 0
    assert int(env.step_count[0]) == 0 and int(env.step_count[1]) == 5
    # rows that did not end: final_obs equals obs
    np.testing.assert_array_equal(info["final_obs"]["image"][1:].numpy(), obs["image"][1:].numpy())
    assert env.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP


def test_truncation_at_max_steps():
    env = BatchedMiniGridEnv("MiniGrid-DoorKey-5x5-v0", 4, seed=0)
    env.reset(seed=1)
    assert env.max_steps == 250
    done_action = torch.full((4,), 6)
    for t in range(1, 2 * env.max_steps + 1):
        obs, rew, term, trunc, info = env.step(done_action)
        expect = t % env.max_steps == 0
        assert trunc.tolist() == [expect] * 4, t
        assert not term.any() and (rew == 0).all()
        assert ("final_obs" in info) == expect
    assert BatchedMiniGridEnv("MiniGrid-Empty-16x16-v0", 1).max_steps == 4 * 16 * 16
    assert BatchedMiniGridEnv("MiniGrid-DoorKey-16x16-v0", 1).max_steps == 10 * 16 * 16


def test_unknown_id_raises():
    # FourRooms (before part 1), KeyCorridor (before part 2) and WFC, the ids used here before, are supported now
    with pytest.raises(ValueError, match="MiniGrid-DoorKey-5x5-v0"):
        BatchedMiniGridEnv("CartPole-v1", 2)
    assert len(MINIGRID_IDS) == 82  # every MiniGrid-* id Minigrid 3.2 registers
    assert set(MINIGRID_IDS) == {env_id for env_id in gym.registry if env_id.startswith("MiniGrid-")}
    assert set(BABYAI_IDS) == {env_id for env_id in gym.registry if env_id.startswith("BabyAI-")}
    assert len(BABYAI_IDS) == 96
    assert set(SUPPORTED_ENV_IDS) == set(MINIGRID_IDS) | set(BABYAI_IDS)


def test_reset_seed_repeatable():
    env = BatchedMiniGridEnv("MiniGrid-DoorKey-8x8-v0", 64)
    actions = torch.randint(0, 7, (200, 64), generator=torch.Generator().manual_seed(0))

    def rollout(seed):
        obs, _ = env.reset(seed=seed)
        grids = [env.encode_grid().clone()]
        images = [obs["image"].clone()]
        for a in actions:
            obs, rew, term, trunc, info = env.step(a)
            images.append(obs["image"].clone())
        return torch.stack(grids), torch.stack(images)

    g1, i1 = rollout(3)
    g2, i2 = rollout(3)
    g3, _ = rollout(4)
    assert torch.equal(g1, g2) and torch.equal(i1, i2)
    assert not torch.equal(g1, g3)
    e1 = BatchedMiniGridEnv("MiniGrid-Empty-Random-6x6-v0", 32, seed=7)
    e2 = BatchedMiniGridEnv("MiniGrid-Empty-Random-6x6-v0", 32, seed=7)
    assert torch.equal(e1.agent_pos, e2.agent_pos) and torch.equal(e1.dir, e2.dir)


def _doorkey_layout_stats(grids, agent_pos, n):
    """grids: (N, W, H, 3) Minigrid encodings -> dict of arrays describing each layout."""
    obj = grids[..., 0]
    wall_cols = (obj[:, :, 1 : n - 1] == 2).sum(2)  # walls per inner column, over inner rows
    split = np.argmax(wall_cols[:, 1 : n - 1] >= n - 3, axis=1) + 1
    door = np.argwhere(obj == 4)
    key = np.argwhere(obj == 5)
    assert len(door) == len(grids) and len(key) == len(grids)
    return dict(
        split=split,
        door_x=door[:, 1],
        door_y=door[:, 2],
        key_x=key[:, 1],
        key_y=key[:, 2],
        agent_x=agent_pos[:, 0],
        agent_y=agent_pos[:, 1],
    )


def _tv(a, b):
    vals = np.union1d(a, b)
    pa = np.array([(a == v).mean() for v in vals])
    pb = np.array([(b == v).mean() for v in vals])
    return 0.5 * np.abs(pa - pb).sum()


@pytest.mark.parametrize("env_id,n", [("MiniGrid-DoorKey-5x5-v0", 5), ("MiniGrid-DoorKey-8x8-v0", 8)])
def test_doorkey_layout_distribution(env_id, n):
    N = 20000
    env = BatchedMiniGridEnv(env_id, N, seed=0)
    grids = env.encode_grid().numpy()
    pos = env.agent_pos.numpy()
    s = _doorkey_layout_stats(grids, pos, n)
    # structure: full wall column with exactly one locked yellow door in it
    assert (s["door_x"] == s["split"]).all()
    assert ((s["split"] >= 2) & (s["split"] <= n - 3)).all()
    assert ((s["door_y"] >= 1) & (s["door_y"] <= n - 3)).all()  # _rand_int(1, height - 2)
    door_cells = grids[np.arange(N), s["door_x"], s["door_y"]]
    assert (door_cells == [4, 4, 2]).all()
    assert (grids[:, n - 2, n - 2] == [8, 1, 0]).all()
    col = grids[np.arange(N), s["split"]][..., 0]  # (N, H)
    assert ((col == 2).sum(1) == n - 1).all()
    # key and agent left of the wall, on distinct cells
    assert (s["key_x"] < s["split"]).all() and (s["agent_x"] < s["split"]).all()
    assert (s["key_x"] >= 1).all() and (s["agent_x"] >= 1).all()
    assert ((s["key_x"] != s["agent_x"]) | (s["key_y"] != s["agent_y"])).all()
    assert (grids[np.arange(N), s["key_x"], s["key_y"]] == [5, 4, 0]).all()
    # same distribution as Minigrid's generator
    real = gym.make(env_id).unwrapped
    M = 1500
    rg, rp, rd = [], [], []
    for k in range(M):
        real.reset(seed=k)
        rg.append(real.grid.encode())
        rp.append(real.agent_pos)
        rd.append(real.agent_dir)
    r = _doorkey_layout_stats(np.stack(rg), np.array(rp), n)
    for name in s:
        assert _tv(s[name], r[name]) < 0.06, name
    assert _tv(env.dir.numpy(), np.array(rd)) < 0.06


def test_empty_random_start_distribution():
    env = BatchedMiniGridEnv("MiniGrid-Empty-Random-5x5-v0", 16000, seed=0)
    pos = env.agent_pos.numpy()
    cells = pos[:, 0] * 10 + pos[:, 1]
    allowed = {x * 10 + y for x in (1, 2, 3) for y in (1, 2, 3)} - {33}
    counts = {c: (cells == c).sum() for c in allowed}
    assert set(np.unique(cells)) == allowed  # never on the goal or a wall
    assert max(abs(c / 16000 - 1 / 8) for c in counts.values()) < 0.015
    assert np.bincount(env.dir.numpy(), minlength=4).min() > 16000 / 4 * 0.9
    fixed = BatchedMiniGridEnv("MiniGrid-Empty-8x8-v0", 10, seed=0)
    assert (fixed.agent_pos == torch.tensor([1, 1])).all() and (fixed.dir == 0).all()


def test_api_spaces_and_obs_types():
    env = BatchedMiniGridEnv("MiniGrid-DoorKey-6x6-v0", 5)
    assert isinstance(env, gym.vector.VectorEnv)
    assert env.num_envs == 5
    assert env.single_action_space == gym.spaces.Discrete(7)
    assert env.action_space.shape == (5,)
    assert env.single_observation_space["image"].shape == (7, 7, 3)
    assert env.observation_space["image"].shape == (5, 7, 7, 3)
    obs, info = env.reset(seed=0)
    assert obs["image"].dtype == torch.uint8 and obs["image"].shape == (5, 7, 7, 3)
    assert obs["direction"].dtype == torch.int64 and obs["direction"].shape == (5,)
    assert obs["mission"] == ["use the key to open the door and then get to the goal"] * 5
    assert env.single_observation_space["image"].contains(obs["image"][0].numpy())
    for acts in ([0, 1, 2, 3, 4], np.array([5, 6, 0, 1, 2]), torch.tensor([2, 2, 2, 2, 2])):
        obs, rew, term, trunc, info = env.step(acts)
        assert rew.shape == term.shape == trunc.shape == (5,)
    with pytest.raises(ValueError):
        env.step([0, 1])
    # stepping runs with env.num_threads torch threads and restores the global setting
    prev = torch.get_num_threads()
    env.step([0] * 5)
    assert torch.get_num_threads() == prev
    env.close()


def _tensors(tree):
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, dict | tuple | list):
        values = tree.values() if isinstance(tree, dict) else tree
        return [t for value in values for t in _tensors(value)]
    return []


@pytest.mark.parametrize("compile", [False, True])
def test_what_reset_and_step_return_is_the_callers_to_change_and_to_learn_from(compile):
    """The env steps in inference mode; what it returns are normal tensors: changed in place and saved for
    backward outside inference mode (an inference tensor raises on both)."""
    env = BatchedMiniGridEnv("MiniGrid-Empty-5x5-v0", 3, seed=0, compile=compile)
    obs, _ = env.reset(seed=0)
    returned = [obs, env.get_obs()]
    for a in [2, 2, 1, 2, 2]:  # env 0 reaches the goal at the last step, with the final observations in info
        returned.append(env.step(np.array([a, 0, 1])))
    assert "final_obs" in returned[-1][4]
    tensors = _tensors(returned)
    assert len(tensors) == 2 * 3 + 5 * 6 + 4  # obs: 3 tensors; a step: obs, reward, flags; final obs, ended
    embedding = torch.nn.Embedding(256, 2)
    for t in tensors:
        assert not t.is_inference()
        t.add_(0) if t.dtype != torch.bool else t.logical_or_(t)
        if t.dtype in (torch.uint8, torch.int64):
            embedding(t.long() if t.dtype == torch.uint8 else t).sum().backward()  # the indices are saved
    env.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu():
    env_id = "MiniGrid-DoorKey-8x8-v0"
    cpu = BatchedMiniGridEnv(env_id, 256, device="cpu", seed=0)
    gpu = BatchedMiniGridEnv(env_id, 256, device="cuda", seed=0)
    reals = [gym.make(env_id).unwrapped for _ in range(256)]
    for i, r in enumerate(reals):
        r.reset(seed=i)
        cpu.set_state_from_minigrid(i, r)
        gpu.set_state_from_minigrid(i, r)
    gen = torch.Generator().manual_seed(0)
    for _ in range(300):
        a = torch.multinomial(torch.as_tensor(ACTION_P), 256, replacement=True, generator=gen)
        oc, rc, tc, uc, ic = cpu.step(a)
        og, rg, tg, ug, ig = gpu.step(a.cuda())
        assert og["image"].is_cuda
        done = tc | uc
        assert torch.equal(done, (tg | ug).cpu()) and torch.equal(rc, rg.cpu())
        if done.any():
            # layouts of new episodes come from different generators: compare final obs
            assert torch.equal(ic["final_obs"]["image"], ig["final_obs"]["image"].cpu())
            for i in done.nonzero().squeeze(1).tolist():
                reals[i].reset(seed=1000 + i)
                cpu.set_state_from_minigrid(i, reals[i])
                gpu.set_state_from_minigrid(i, reals[i])
        else:
            assert torch.equal(oc["image"], og["image"].cpu())
