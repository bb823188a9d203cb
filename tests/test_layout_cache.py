"""The bank's layout cache (``torch_rl/envs/minigrid/layout_cache.py``) and ``prepare``, which fills it: a bank
starts from the cache and grows it, a corrupt, foreign or code-carrying file is refused with one line and the bank
generates instead, writes are atomic, and a cache made on several processes equals one made on one."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from torch_rl.envs.minigrid import BatchedMiniGridEnv, layout_cache
from torch_rl.envs.minigrid.codes import ENCODINGS
from torch_rl.envs.minigrid.layouts import make_minigrid_env
from torch_rl.envs.minigrid.prepare import fill
from torch_rl.envs.minigrid.prepare import main as prepare_main
from torch_rl.envs.minigrid.registry import make_family

REPO = Path(__file__).resolve().parent.parent
BOXES = "MiniGrid-ObstructedMaze-1Dlhb-v0"  # a fast bank family whose boxes hold keys: every array is exercised
FAST = "MiniGrid-MultiRoom-N2-S4-v0"


def _bank(env_id, seed, n, **options):
    opts = {"capacity": n, "initial": n, "chunk": 8, **options}
    return BatchedMiniGridEnv(env_id, 4, seed=seed, bank_options=opts)


def _assert_minigrid_resets(bank, seed, indices):
    real = make_minigrid_env(bank.env_id)
    for i in indices:
        real.reset(seed=seed + i)
        codes = bank.grid[i].view(bank.height, bank.width).long()
        np.testing.assert_array_equal(torch.tensor(ENCODINGS)[codes].transpose(0, 1).numpy(), real.grid.encode())
        assert tuple(bank.agent[i].tolist()) == tuple(int(v) for v in real.agent_pos)
        assert int(bank.dir[i]) == real.agent_dir and bank.missions[int(bank.mission[i])] == real.mission


def _warnings(text):
    return [line for line in text.splitlines() if line.startswith("warning: ")]


def test_a_bank_writes_its_layouts_and_the_next_bank_starts_from_them(capfd):
    first = _bank(BOXES, 7, 16)
    assert first.layout_stats()["bank_cached"] == 0
    first.close()
    path = layout_cache.cache_path(BOXES, 7)
    assert path.is_file() and layout_cache.stored_count(path, layout_cache.cache_key(BOXES, 7)) == 16
    # a bigger bank: 16 layouts from the file, the worker makes layouts 16 .. 23, and the file grows to 24
    second = _bank(BOXES, 7, 24)
    assert second.layout_stats()["bank_cached"] == 16 and second.bank.received == 24
    for name in ("grid", "agent", "dir", "task", "mission", "contents", "unique"):
        assert torch.equal(getattr(second.bank, name)[:16], getattr(first.bank, name)[:16]), name
    assert (second.bank.contents != 1).any()  # boxes holding keys went through the file
    _assert_minigrid_resets(second.bank, 7, (0, 15, 16, 23))
    second.close()
    assert layout_cache.stored_count(path, layout_cache.cache_key(BOXES, 7)) == 24
    assert not _warnings(capfd.readouterr().err)


def test_no_cache_without_a_seed_or_when_turned_off(tmp_path):
    BatchedMiniGridEnv(FAST, 2, bank_options={"capacity": 8, "initial": 8, "chunk": 8}).close()
    _bank(FAST, 3, 8, cache=False).close()
    assert not list(Path(os.environ["TORCH_RL_CACHE"]).glob("*"))
    _bank(FAST, 3, 8, cache_dir=tmp_path).close()
    assert [p.name for p in tmp_path.iterdir()] == [layout_cache.cache_path(FAST, 3).name]


def _damaged(path):
    """Yields (why, writer) pairs, each writing a different bad file at ``path``."""
    with np.load(path) as data:
        good = {name: data[name] for name in data.files}

    def save(arrays):
        np.savez(path, **arrays)

    def retouched(**changes):
        return lambda: save({**good, **changes})

    grid = good["layout_grid"].copy()
    grid[3, 2, 2] = 1 if grid[3, 2, 2] != 1 else 2  # a cell changed to another valid code, its hash not: an edit
    codes = good["layout_grid"].copy()
    codes[0, 0, 0] = 200
    raw = path.read_bytes()
    return {
        "garbage": lambda: path.write_bytes(b"not a cache at all"),
        "truncated": lambda: path.write_bytes(raw[: len(raw) // 2]),
        "a changed cell": retouched(layout_grid=grid),
        "an unknown code": retouched(layout_grid=codes),
        "a missing array": lambda: save({k: v for k, v in good.items() if k != "layout_agent"}),
        "a wrong shape": retouched(layout_agent=np.zeros((len(grid), 3), np.int64)),
        "an older format": retouched(key_format=np.array(0)),
        "another Minigrid": retouched(key_minigrid=np.array("2.0.0")),
    }


def test_a_corrupt_cache_is_refused_in_one_line_and_the_bank_generates_instead(capfd):
    _bank(FAST, 5, 16).close()
    path = layout_cache.cache_path(FAST, 5)
    good = path.read_bytes()
    for why, write in _damaged(path).items():
        path.write_bytes(good)
        write()
        capfd.readouterr()
        env = _bank(FAST, 5, 16)
        err = capfd.readouterr().err
        warnings = _warnings(err)
        assert len(warnings) == 1 and "refused" in warnings[0] and str(path) in warnings[0], (why, err)
        assert "Traceback" not in err, why
        assert env.layout_stats()["bank_cached"] == 0 and env.bank.received == 16, why
        _assert_minigrid_resets(env.bank, 5, (0, 3, 15))  # generated afresh, exactly
        env.close()
        assert layout_cache.stored_count(path, layout_cache.cache_key(FAST, 5)) == 16  # rewritten, whole again
        layout_cache.load(path, layout_cache.cache_key(FAST, 5), make_family(FAST))


def test_a_cache_made_for_another_key_is_refused(capfd):
    _bank(FAST, 5, 8).close()
    layout_cache.cache_path(FAST, 5).rename(layout_cache.cache_path(FAST, 6))  # seed 5's layouts named seed 6's
    capfd.readouterr()
    env = _bank(FAST, 6, 8)
    warnings = _warnings(capfd.readouterr().err)
    assert len(warnings) == 1 and "another key" in warnings[0] and "base_seed 5" in warnings[0], warnings
    assert env.layout_stats()["bank_cached"] == 0
    _assert_minigrid_resets(env.bank, 6, (0, 7))
    env.close()


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["TORCH_RL_CACHE"]) / "pwned",))


def test_a_cache_carrying_code_is_refused_and_never_run(capfd):
    _bank(FAST, 5, 8).close()
    path = layout_cache.cache_path(FAST, 5)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    mission = np.empty(8, dtype=object)
    mission[:] = [_Exploit()] * 8
    np.savez(path, **{**arrays, "layout_mission": mission})  # a pickled object array inside the archive
    pickled = path.with_suffix(".pkl")
    pickled.write_bytes(pickle.dumps(_Exploit()))
    capfd.readouterr()
    for bad in (path, pickled):
        with pytest.raises(layout_cache.CacheRefused):
            layout_cache.load(bad, layout_cache.cache_key(FAST, 5), make_family(FAST))
    env = _bank(FAST, 5, 8)
    assert len(_warnings(capfd.readouterr().err)) == 1 and env.layout_stats()["bank_cached"] == 0
    env.close()
    assert not (Path(os.environ["TORCH_RL_CACHE"]) / "pwned").exists()


def test_writes_replace_a_symlink_never_write_through_it(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    path = layout_cache.cache_path(FAST, 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(target)
    _bank(FAST, 2, 8).close()
    assert target.read_text() == "keep me"
    assert path.is_file() and not path.is_symlink()
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary file left behind


def test_a_bank_never_shrinks_a_longer_cache():
    key = layout_cache.cache_key(FAST, 4)
    shorter = _bank(FAST, 4, 8)  # two runs of the same key at once: this one has 8 new layouts to write ...
    _bank(FAST, 4, 24).close()  # ... and this one wrote 24 meanwhile
    shorter.close()  # layout i is the same in both: the longer file is kept
    assert layout_cache.stored_count(layout_cache.cache_path(FAST, 4), key) == 24


def _load(env_id, seed, directory):
    path = layout_cache.cache_path(env_id, seed, directory)
    return layout_cache.load(path, layout_cache.cache_key(env_id, seed), make_family(env_id))


def test_prepare_on_several_processes_equals_one_process_and_the_bank(tmp_path):
    env_id = "MiniGrid-WFC-ObstaclesBlackdots-v0"
    assert fill(env_id, 10, procs=1, seed=3, cache_dir=tmp_path / "one") == (0, 10)
    assert fill(env_id, 10, procs=2, seed=3, cache_dir=tmp_path / "two", chunk=1) == (0, 10)
    one, two = _load(env_id, 3, tmp_path / "one"), _load(env_id, 3, tmp_path / "two")
    assert one.keys() == two.keys() and len(set(one["hash"].tolist())) == 10
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)
    # the bank's own layouts (its worker, from nothing) are the same
    env = _bank(env_id, 3, 10, chunk=5, cache=False)
    for name, array in env.bank.layouts().items():
        np.testing.assert_array_equal(array, one[name], err_msg=name)
    env.close()


def test_prepare_resumes_from_what_the_cache_holds(tmp_path):
    assert fill(BOXES, 12, procs=2, seed=9, cache_dir=tmp_path / "a") == (0, 12)
    assert fill(BOXES, 30, procs=2, seed=9, cache_dir=tmp_path / "a") == (12, 30)
    assert fill(BOXES, 30, procs=1, seed=9, cache_dir=tmp_path / "a") == (30, 30)  # nothing left to make
    assert fill(BOXES, 30, procs=1, seed=9, cache_dir=tmp_path / "b") == (0, 30)
    resumed, direct = _load(BOXES, 9, tmp_path / "a"), _load(BOXES, 9, tmp_path / "b")
    for name in direct:
        np.testing.assert_array_equal(resumed[name], direct[name], err_msg=name)
    env = _bank(BOXES, 9, 30, cache_dir=tmp_path / "a")  # a bank of the same key starts from all of it
    assert env.layout_stats()["bank_cached"] == 30
    env.close()


def test_prepare_remakes_a_refused_cache_from_layout_0(tmp_path, capfd):
    path = layout_cache.cache_path(FAST, 2, tmp_path)
    assert fill(FAST, 12, procs=1, seed=2, cache_dir=tmp_path) == (0, 12)
    good = _load(FAST, 2, tmp_path)
    _damaged(path)["a changed cell"]()  # the same key and 12 layouts, one of them edited
    capfd.readouterr()
    assert fill(FAST, 12, procs=1, seed=2, cache_dir=tmp_path) == (0, 12)
    warnings = _warnings(capfd.readouterr().err)
    assert len(warnings) == 1 and "refused" in warnings[0], warnings
    remade = _load(FAST, 2, tmp_path)
    for name in good:
        np.testing.assert_array_equal(remade[name], good[name], err_msg=name)


def _prepare(*args):
    return subprocess.run(
        [sys.executable, "-m", "torch_rl.envs.minigrid.prepare", *map(str, args)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, says",
    [
        (("--env", "MiniGrid-Nope-v0", "--layouts", "4"), "--env MiniGrid-Nope-v0"),
        (("--env", "MiniGrid-Empty-5x5-v0", "--layouts", "4"), "no cache"),
        (("--env", FAST, "--layouts", "0"), "--layouts 0"),
        (("--env", FAST, "--layouts", "4", "--procs", "0"), "--procs 0"),
        (("--env", FAST, "--layouts", "four"), "--layouts"),
        (("--env", FAST, "--layouts", "4", "--seed", "-1"), "--seed -1"),
        (("--layouts", "4"), "--env"),
    ],
)
def test_prepare_bad_flags_are_one_line_errors(args, says, capsys):
    with pytest.raises(SystemExit) as exit_:
        prepare_main(list(args))
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: ") and says in err, err


def test_prepare_generator_error_is_one_line_and_keeps_what_was_made(monkeypatch, capsys):
    from torch_rl.envs.minigrid import prepare

    made = prepare._make

    def failing(seeds):
        if seeds.start >= 1 + 8:  # the second chunk of 8 fails
            raise RuntimeError("Could not generate a valid pattern\nwithin 1000 attempts")
        return made(seeds)

    monkeypatch.setattr(prepare, "_make", failing)
    with pytest.raises(SystemExit) as exit_:
        prepare_main(["--env", FAST, "--layouts", "64", "--procs", "1", "--chunk", "8", "--quiet"])
    err = capsys.readouterr().err
    assert exit_.value.code == 1 and err.count("\n") == 1 and err.startswith("error: "), err
    assert "Could not generate a valid pattern" in err
    assert layout_cache.stored_count(layout_cache.cache_path(FAST, 1), layout_cache.cache_key(FAST, 1)) == 8


def test_prepare_command_fills_the_cache_with_a_progress_bar():
    proc = _prepare("--env", FAST, "--layouts", "40", "--procs", "2", "--seed", "1")
    assert proc.returncode == 0, proc.stderr
    assert "40/40 layouts" in proc.stderr and "now holds (it held 0) 40 layouts" in proc.stdout
    assert layout_cache.stored_count(layout_cache.cache_path(FAST, 1), layout_cache.cache_key(FAST, 1)) == 40


def test_the_bank_warns_once_when_episodes_run_far_ahead_of_its_layouts(capfd):
    # grow_every: the bank stays at 8 layouts for these draws however fast its worker is
    env = BatchedMiniGridEnv(FAST, 64, seed=1, bank_options={"capacity": 10**4, "initial": 8, "chunk": 8,
                                                              "grow_every": 10**6})  # fmt: skip
    capfd.readouterr()
    for _ in range(40):  # resets of every row: 64 episodes per draw, far past 100 per layout
        env.reset()
    stats = env.layout_stats()
    assert stats["episodes"] == 41 * 64 and stats["bank_size"] == 8 and stats["layouts_drawn"] <= 8
    warnings = _warnings(capfd.readouterr().err)
    assert len(warnings) == 1, warnings
    assert "8 layouts" in warnings[0] and f"prepare --env {FAST} --seed 1" in warnings[0], warnings
    env.close()


def test_a_running_bank_writes_its_cache_in_the_background():
    """Once its worker is done the bank writes the file (in a thread, while the env keeps stepping), unclosed."""
    env = BatchedMiniGridEnv(FAST, 4, seed=8, bank_options={"capacity": 32, "initial": 8, "chunk": 8})
    key, deadline = layout_cache.cache_key(FAST, 8), time.perf_counter() + 60
    while env.bank.saved < 32 and time.perf_counter() < deadline:
        env.reset()  # each reset takes in what the worker sent, and starts the write once it is all there
        time.sleep(0.05)
    assert env.bank.saved == 32 and layout_cache.stored_count(layout_cache.cache_path(FAST, 8), key) == 32
    env.close()


BABYAI = "BabyAI-PutNextLocal-v0"  # its instructions (objects, descriptions, limits) travel with the layouts


def test_babyai_instructions_go_through_the_cache_and_out_of_range_ones_are_refused(capfd):
    from torch_rl.envs.minigrid.layouts import layout_hashes

    first = _bank(BABYAI, 3, 16)
    first.close()
    second = _bank(BABYAI, 3, 16)
    assert second.layout_stats()["bank_cached"] == 16
    for name, values in first.bank.extras.items():
        assert torch.equal(second.bank.extras[name], values), name
    second.close()
    assert not _warnings(capfd.readouterr().err)
    path = layout_cache.cache_path(BABYAI, 3)
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    leaf = arrays["layout_leaf"].copy()
    leaf[0, 0, 0] = 9  # no such instruction kind; the hash made to fit, so that only the range check can refuse
    arrays["layout_leaf"] = leaf
    layouts = {name[len("layout_") :]: a for name, a in arrays.items() if name.startswith("layout_")}
    arrays["layout_hash"] = layout_hashes(layouts)
    np.savez(path, **arrays)
    env = _bank(BABYAI, 3, 16)
    warnings = _warnings(capfd.readouterr().err)
    assert len(warnings) == 1 and "out of range" in warnings[0] and "leaf" in warnings[0], warnings
    assert env.layout_stats()["bank_cached"] == 0
    env.close()
