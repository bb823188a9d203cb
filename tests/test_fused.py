"""The C loops (torch_rl/envs/minigrid/fused_view.c, fused_step.c and fused_verifier.c) against the engine's
tensor ops, which CUDA runs: the same bytes on random states of every kind of cell, the same steps, verdicts and
verifier state with resets, and the tensor ops against Minigrid too (the other fidelity tests run the loops, the
CPU's default)."""

import pytest
import torch

from tests.test_batched_babyai import run_fidelity as run_babyai_fidelity
from tests.test_batched_minigrid import run_fidelity as run_minigrid_fidelity
from torch_rl.envs.minigrid import BatchedMiniGridEnv, fused
from torch_rl.envs.minigrid import codes as C
from torch_rl.envs.minigrid.view import PAD

SMALL_BANK = {"capacity": 8, "initial": 8}


def random_states(env, generator, opaque=0.3):
    """Every row's grid cells drawn at random (opaque ones with probability ``opaque``), the agent anywhere in it,
    any direction, carrying any code: occlusion patterns that no layout would make as often."""
    B, W, H = env.num_envs, env.width, env.height
    see_through = torch.arange(1, C.C_OPAQUE0)
    blocking = torch.arange(C.C_OPAQUE0, C.N_CODES)
    pick = lambda codes, n: codes[torch.randint(len(codes), (n,), generator=generator)]  # noqa: E731
    n = B * W * H
    cells = torch.where(torch.rand(n, generator=generator) < opaque, pick(blocking, n), pick(see_through, n))
    grid = env.grid.clone().view(B, env.Hp, env.Wp)
    grid[:, PAD : PAD + H, PAD : PAD + W] = cells.view(B, H, W).to(torch.uint8)
    x, y = torch.randint(W, (B,), generator=generator), torch.randint(H, (B,), generator=generator)
    agent = (y + PAD) * env.Wp + x + PAD
    d = torch.randint(4, (B,), generator=generator)
    carry = pick(torch.arange(1, C.N_CODES), B)
    return grid.view(B, -1), agent, d, carry


@pytest.mark.parametrize(
    ("env_id", "bank"),
    [
        ("MiniGrid-DoorKey-5x5-v0", None),
        ("MiniGrid-FourRooms-v0", None),
        ("MiniGrid-Empty-8x8-v0", None),  # sees through walls: no occlusion
        ("BabyAI-KeyCorridorS3R1-v0", SMALL_BANK),  # wider than high
        ("BabyAI-GoToLocal-v0", SMALL_BANK),
    ],
)
def test_the_fused_view_gives_the_tensor_views_bytes_on_random_states(env_id, bank):
    env = BatchedMiniGridEnv(env_id, 512, seed=0, bank_options=bank)
    assert env._fused is not None
    generator = torch.Generator().manual_seed(1)
    hidden = 0
    with torch.inference_mode():
        for opaque in (0.1, 0.3, 0.6):
            grid, agent, d, carry = random_states(env, generator, opaque)
            expected = env._image(grid, agent, d, carry)
            fused = env._fused.render(torch.empty(env.num_envs, 7, 7, 3, dtype=torch.uint8), grid, agent, d, carry)
            assert torch.equal(fused, expected)
            hidden += int((expected[..., 0] == 0).sum())
            rows = torch.randperm(env.num_envs, generator=generator)[:37]
            some = env._fused.render(torch.empty(37, 7, 7, 3, dtype=torch.uint8), grid, agent, d, carry, rows)
            assert torch.equal(some, expected[rows])  # the rows' views, in the order of rows
            scattered = torch.zeros(env.num_envs, 7, 7, 3, dtype=torch.uint8)
            env._fused.render(scattered, grid, agent, d, carry, rows)  # each at its row's place
            assert torch.equal(scattered[rows], expected[rows]) and int(scattered.sum()) == int(expected[rows].sum())
    assert (hidden > 0) != env.see_through_walls  # occlusion was exercised where the family has it


@pytest.mark.parametrize(
    "env_id",
    [
        "MiniGrid-DoorKey-5x5-v0",  # the whole C step (fused_step.c): keys, doors, goals, truncation
        "MiniGrid-LavaGapS5-v0",  # the whole C step: lava
        "MiniGrid-Empty-5x5-v0",  # the whole C step: goals, often reached
        "MiniGrid-PutNear-6x6-N2-v0",  # the C move, then the family's rules, which hold the carried code before it
        "MiniGrid-RedBlueDoors-6x6-v0",  # the C move, then the family's rules
        "MiniGrid-Dynamic-Obstacles-5x5-v0",  # the family's rules move obstacles before the C move
        "BabyAI-GoToLocal-v0",  # go to
        "BabyAI-PickupLoc-v0",  # pick up, locations
        "BabyAI-PutNextLocalS5N3-v0",  # put next to
        "BabyAI-OpenDoorsOrderN4Debug-v0",  # open, strict sequences
        "BabyAI-PutNextS5N2Carrying-v0",  # carrying at the start
        "BabyAI-KeyInBox-v0",  # a key in a box
        "BabyAI-MiniBossLevel-v0",  # sequences, ands, every kind
        "BabyAI-SynthSeq-v0",
    ],
)
def test_fused_and_tensor_envs_step_alike(env_id):
    """Same seed, same actions: every observation, reward and flag equal, the resets' final observations too, and
    BabyAI's verifier state after every step."""
    envs = [BatchedMiniGridEnv(env_id, 64, seed=3, bank_options=SMALL_BANK, fused=f) for f in (True, False)]
    assert envs[0].fused_library is not None and envs[1].fused_library is None
    assert envs[0]._fused_step is not None and envs[1]._fused_step is None
    # a family without rules around the move steps wholly in C; the others move in C, then apply their rules
    plain = {"MiniGrid-DoorKey-5x5-v0", "MiniGrid-LavaGapS5-v0", "MiniGrid-Empty-5x5-v0"}
    assert envs[0]._plain_step == (env_id in plain)
    generator = torch.Generator().manual_seed(0)
    first = [env.reset(seed=3)[0] for env in envs]
    assert torch.equal(first[0]["image"], first[1]["image"])
    ended = rewarded = 0
    for _ in range(300):
        actions = torch.randint(0, 7, (64, 2), generator=generator)[:, 1]  # strided: the loops read it contiguous
        (obs, reward, terminated, truncated, info), other = (env.step(actions) for env in envs)
        for key in ("image", "direction", "mission_tokens"):
            assert torch.equal(obs[key], other[0][key]), key
        assert torch.equal(reward, other[1]) and torch.equal(terminated, other[2]) and torch.equal(truncated, other[3])
        if info:
            assert torch.equal(info["final_obs"]["image"], other[4]["final_obs"]["image"])
            ended += int(info["_final_obs"].sum())
        rewarded += int((reward > 0).sum())
        obs["image"].add_(1)  # the caller's own tensor: changing it changes nothing of the env's
        verifiers = [getattr(env.family, "verifier", None) for env in envs]
        if verifiers[0] is not None:
            for name in ("state", "flags", "ids", "known", "goto_cells", "obj_pos"):
                assert torch.equal(getattr(verifiers[0], name), getattr(verifiers[1], name)), name
    assert ended > 0 and rewarded > 0


@pytest.mark.parametrize("env_id", ["BabyAI-MiniBossLevel-v0", "BabyAI-OpenDoorsOrderN4Debug-v0"])
def test_the_tensor_verifier_against_minigrid(env_id):
    stats = run_babyai_fidelity(env_id, num_envs=4, num_steps=80, seed=4, fused=False)
    assert stats["steps"] == 320 and stats["successes"] > 0, stats


def test_the_tensor_view_against_minigrid():
    stats = run_minigrid_fidelity("MiniGrid-DoorKey-5x5-v0", num_envs=8, num_steps=200, seed=2, fused=False)
    assert stats["steps"] == 1600 and stats["pickups"] > 0, stats


def test_the_fused_step_refuses_an_action_out_of_range_and_changes_nothing():
    env = BatchedMiniGridEnv("MiniGrid-DoorKey-5x5-v0", 4, seed=0)
    assert env._fused_step is not None
    state = [t.clone() for t in (env.grid, env.agent, env.dir, env.carry, env.step_count)]
    for bad in (7, -1):
        with pytest.raises(IndexError, match=r"actions must be in \[0, 7\)"):
            env.step(torch.tensor([2, 2, bad, 2]))
        for before, now in zip(state, (env.grid, env.agent, env.dir, env.carry, env.step_count), strict=True):
            assert torch.equal(before, now)
    env.step(torch.tensor([2, 2, 6, 2]))
    assert env.step_count.tolist() == [1, 1, 1, 1]


def test_fused_view_is_validated():
    with pytest.raises(TypeError, match="fused"):
        BatchedMiniGridEnv("MiniGrid-Empty-5x5-v0", 2, fused="yes")
    env = BatchedMiniGridEnv("MiniGrid-Empty-5x5-v0", 2)
    with torch.inference_mode(), pytest.raises(RuntimeError, match="int64"):
        env._fused.render(env._new_image(2), env.grid, env.agent.int(), env.dir, env.carry)


@pytest.fixture
def fresh_build(monkeypatch, tmp_path):
    """``fused.load`` with its cached result dropped, and the user's cache folder under ``tmp_path``."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    fused.load.cache_clear()
    yield tmp_path
    fused.load.cache_clear()  # the next env builds or finds it again in the real cache


def test_the_build_is_kept_in_the_users_cache(fresh_build):
    assert fused.load() is not None
    (built,) = (fresh_build / "cache" / "torch_rl").glob("fused-*.so")
    stamp = built.stat().st_mtime_ns
    fused.load.cache_clear()
    assert fused.load() is not None and built.stat().st_mtime_ns == stamp  # found, not built again


def test_a_damaged_build_in_the_cache_is_built_again(fresh_build):
    built = fresh_build / "cache" / "torch_rl" / fused.build_spec()[2]
    built.parent.mkdir(parents=True)
    built.write_bytes(b"not a library")  # as a full disk might leave it
    assert fused.load() is not None and built.read_bytes()[:4] == b"\x7fELF"


def test_the_build_is_not_written_through_a_link(fresh_build):
    elsewhere = fresh_build / "elsewhere"
    elsewhere.mkdir()
    (fresh_build / "cache").mkdir()
    (fresh_build / "cache" / "torch_rl").symlink_to(elsewhere)
    assert fused.load() is not None  # built in a private temporary folder instead
    assert list(elsewhere.iterdir()) == []


def test_without_a_compiler_the_env_warns_and_keeps_its_tensor_view(fresh_build, monkeypatch):
    monkeypatch.setenv("CC", str(fresh_build / "no-such-compiler"))
    with pytest.warns(UserWarning, match="tensor ops"):
        env = BatchedMiniGridEnv("MiniGrid-DoorKey-5x5-v0", 4, seed=0)
    assert env._fused is None
    env.step(torch.zeros(4, dtype=torch.int64))
    with pytest.raises(ValueError, match="C compiler"):
        BatchedMiniGridEnv("MiniGrid-DoorKey-5x5-v0", 4, fused=True)
