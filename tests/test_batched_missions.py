"""Missions of the batched env as token ids: the fixed vocabulary covers every mission Minigrid gives, the tokens
are the mission strings', and a text model's preprocessor maps them to the ids its saved vocabulary gives the
strings (so a policy trained batched reads the real env's missions the same way)."""

from __future__ import annotations

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid-* ids)
import pytest
import torch

from torch_rl.envs.minigrid import BatchedMiniGridEnv
from torch_rl.envs.minigrid.missions import MAX_MISSION_WORDS, MISSION_WORDS, mission_tokens, mission_words
from torch_rl.envs.minigrid.registry import MINIGRID_IDS
from utils.format import MiniGridPreprocessor

TINY_BANK = {"capacity": 64, "initial": 32, "chunk": 32}


def test_vocabulary_covers_every_mission_of_every_id():
    longest = 0
    for env_id in MINIGRID_IDS:
        real = gym.make(env_id).unwrapped
        for seed in range(4):
            real.reset(seed=seed)
            words = mission_words(real.mission)
            assert set(words) <= set(MISSION_WORDS), (env_id, real.mission)
            longest = max(longest, len(words))
    assert longest == MAX_MISSION_WORDS
    with pytest.raises(ValueError, match="outside"):
        mission_tokens(["go to the orange door"])


@pytest.mark.parametrize("env_id", ["MiniGrid-Fetch-8x8-N3-v0", "MiniGrid-GoToDoor-5x5-v0", "MiniGrid-Empty-5x5-v0"])
def test_mission_tokens_are_the_mission_strings(env_id):
    env = BatchedMiniGridEnv(env_id, 32, seed=1, bank_options=TINY_BANK)
    obs, _ = env.reset(seed=1)
    for _ in range(3):
        tokens = obs["mission_tokens"]
        assert tokens.dtype == torch.int64 and tokens.shape == (32, MAX_MISSION_WORDS)
        assert torch.equal(tokens, mission_tokens(obs["mission"]))
        for row, mission in zip(tokens.tolist(), obs["mission"], strict=True):
            assert [MISSION_WORDS[t - 1] for t in row if t] == mission_words(mission)
        obs, *_ = env.step(torch.full((32,), 6))  # done: GoTo's and Fetch's missions change (new episodes)
    env.close()


def test_preprocessor_tokens_match_the_strings_through_the_saved_vocabulary():
    env = BatchedMiniGridEnv("MiniGrid-Fetch-8x8-N3-v0", 64, seed=0, bank_options=TINY_BANK)
    obs, _ = env.reset(seed=0)
    assert len({len(mission_words(m)) for m in obs["mission"]}) > 1  # missions of different lengths: padding
    batched = MiniGridPreprocessor(tokenise=True)
    text = batched(obs).text
    # a model saved from batched training, evaluated on the real env: its vocabulary tokenises the strings
    real = MiniGridPreprocessor(tokenise=True)
    real.load_state_dict(batched.state_dict())
    strings = {key: value for key, value in obs.items() if key != "mission_tokens"}
    assert torch.equal(text, real(strings).text)
    one = real([{"image": obs["image"][0].numpy(), "mission": obs["mission"][0]}]).text  # one env: no padding
    assert torch.equal(one[0], text[0, : one.shape[1]]) and not text[0, one.shape[1] :].any()
    # a vocabulary loaded first (resumed training) keeps its ids
    resumed = MiniGridPreprocessor(tokenise=True)
    resumed.load_state_dict({"vocab": {"fetch": 7, "red": 1}})
    ids = resumed(obs).text
    assert resumed.vocab.vocab["fetch"] == 7 and resumed.vocab.vocab["red"] == 1
    again = MiniGridPreprocessor(tokenise=True)
    again.load_state_dict(resumed.state_dict())
    assert torch.equal(ids, again(strings).text)
    env.close()


def test_train_batched_text_then_evaluate_on_the_real_env(tmp_path):
    import torch as th

    from tests.test_scripts import run_script

    env_id = "MiniGrid-GoToDoor-5x5-v0"
    run_script("train", "--algo", "ppo", "--env", env_id, "--model", "t", "--batched", "--text", "--procs", "8",
               "--frames", "2048", "--quiet", storage=tmp_path)  # fmt: skip
    vocab = th.load(tmp_path / "t" / "status.pt", weights_only=True)["vocab"]
    assert [vocab[w] for w in MISSION_WORDS] == list(range(1, len(MISSION_WORDS) + 1))  # a fresh model's vocabulary
    out = run_script("evaluate", "--env", env_id, "--model", "t", "--episodes", "8", storage=tmp_path)
    assert "8 episodes" in out.stdout
