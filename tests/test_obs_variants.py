"""scripts.train --obs: Minigrid's observation wrappers by name, the default model sized to their images, the choice
saved with the model and read back by evaluate and visualize, and the combinations refused in one line."""

import gzip
import io
import json
import shutil
from pathlib import Path

import gymnasium as gym
import minigrid.wrappers
import numpy as np
import pytest
import torch
from torch import nn

from model import ACModel
from scripts import evaluate, train, visualize
from utils import checkpoint as checkpoints
from utils.env import OBS_WRAPPERS, make_env
from utils.errors import UsageError
from utils.format import get_obss_preprocessor

REPO = Path(__file__).resolve().parents[1]
DOORKEY = "MiniGrid-DoorKey-5x5-v0"
TINY = ["--algo", "ppo", "--procs", "2", "--frames-per-proc", "16", "--batch-size", "32", "--epochs", "1", "--quiet"]
VARIANTS = ("full", "rgb", "rgb-full")
IMAGE_SHAPES = {"partial": (7, 7, 3), "full": (5, 5, 3), "rgb": (56, 56, 3), "rgb-full": (40, 40, 3)}


# --- the observations are Minigrid's wrappers' -------------------------------------------------------------------


@pytest.mark.parametrize("env_id", [DOORKEY, "MiniGrid-KeyCorridorS3R1-v0"])
@pytest.mark.parametrize("obs", VARIANTS)
def test_the_observations_are_exactly_minigrids_wrappers(obs, env_id):
    """make_env applies the wrapper over the fast observation path: every observation (image, direction, mission)
    equals the wrapper's over Minigrid's own env, step after step, through episode ends."""
    ours = make_env(env_id, seed=3, obs=obs)
    theirs = getattr(minigrid.wrappers, OBS_WRAPPERS[obs])(gym.make(env_id))
    assert ours.observation_space == theirs.observation_space
    mine, _ = ours.reset(seed=5)
    reference, _ = theirs.reset(seed=5)
    rng = np.random.default_rng(0)
    for step in range(300):
        assert mine.keys() == reference.keys()
        assert np.array_equal(mine["image"], reference["image"]), (obs, step)
        assert mine["direction"] == reference["direction"] and mine["mission"] == reference["mission"]
        action = int(rng.integers(ours.action_space.n))
        mine, _, terminated, truncated, _ = ours.step(action)
        reference, _, terminated_ref, truncated_ref, _ = theirs.step(action)
        assert (terminated, truncated) == (terminated_ref, truncated_ref)
        if terminated or truncated:
            mine, _ = ours.reset(seed=step)
            reference, _ = theirs.reset(seed=step)
    assert mine["image"].shape == ours.observation_space["image"].shape


@pytest.mark.parametrize("obs, shape", IMAGE_SHAPES.items())
def test_each_variant_gives_its_image_shape(obs, shape):
    assert make_env(DOORKEY, seed=0, obs=obs).observation_space["image"].shape == shape


# --- the default model sizes itself to the image ----------------------------------------------------------------


@pytest.mark.parametrize(
    "shape",
    [(7, 7, 3), (7, 7, 20), (5, 5, 3), (6, 6, 20), (8, 8, 3), (16, 16, 3), (25, 25, 3), (40, 40, 3), (56, 56, 3)]
    + [(64, 64, 3), (200, 200, 3)],
)
def test_the_model_fits_grids_and_frames_of_every_size(shape):
    model = ACModel({"image": shape}, gym.spaces.Discrete(7), use_memory=True)
    assert 64 <= model.image_embedding_size <= 1024  # large grids are pooled: the LSTM stays small
    images = torch.randint(0, 256 if shape[0] >= 32 else 10, (3, *shape)).float()
    dist, value, memory = model(type("Obs", (), {"image": images})(), torch.zeros(3, model.memory_size))
    assert dist.logits.shape == (3, 7) and value.shape == (3,) and memory.shape == (3, model.memory_size)


class ClassicACModel(nn.Module):
    """The image part of the default model before it was sized to the image (commit 90f50a8), verbatim: the net
    that saved models were trained with."""

    def __init__(self, n, m, channels):
        super().__init__()
        self.image_conv = nn.Sequential(
            nn.Conv2d(channels, 16, (2, 2)),
            nn.ReLU(),
            nn.MaxPool2d((2, 2)),
            nn.Conv2d(16, 32, (2, 2)),
            nn.ReLU(),
            nn.Conv2d(32, 64, (2, 2)),
            nn.ReLU(),
        )
        self.image_embedding_size = ((n - 1) // 2 - 2) * ((m - 1) // 2 - 2) * 64

    def forward(self, image):
        x = image.permute(0, 3, 1, 2)
        return self.image_conv(x).reshape(x.shape[0], -1)


@pytest.mark.parametrize("shape", [(7, 7, 3), (7, 7, 20), (9, 9, 3)])
def test_the_partial_view_net_is_the_classic_one(shape):
    """Same layers, same initial parameters for a seed (so that a seed trains as before), same embedding."""
    torch.manual_seed(0)
    classic = ClassicACModel(*shape)
    torch.manual_seed(0)
    model = ACModel({"image": shape}, gym.spaces.Discrete(7))
    assert model.image_embedding_size == classic.image_embedding_size
    classic_state, state = classic.image_conv.state_dict(), model.image_conv.state_dict()
    assert classic_state.keys() == state.keys()
    assert all(torch.equal(classic_state[key], state[key]) for key in state)
    images = torch.randint(0, 10, (5, *shape)).float()
    # equal up to float rounding: the default net computes its convs as patches x weights (torch_rl/patch_conv.py)
    torch.testing.assert_close(model._embed(type("Obs", (), {"image": images})()), classic(images))


def load_fixture(name):
    path = REPO / "tests" / "data" / name
    if (path / "status.pt").exists():
        return torch.load(path / "status.pt", map_location="cpu", weights_only=False)
    with gzip.open(path / "status.pt.gz") as f:
        return torch.load(io.BytesIO(f.read()), map_location="cpu", weights_only=False)


@pytest.mark.parametrize("fixture, use_text", [("doorkey_a2c", False), ("doorkey_text_ppo", True)])
def test_models_saved_before_the_sizing_load_and_act_as_before(fixture, use_text):
    state = load_fixture(fixture)["model_state"]
    env = make_env(DOORKEY, seed=0)
    obs_space, preprocess = get_obss_preprocessor(env.observation_space, use_text=use_text)
    model = ACModel(obs_space, env.action_space, use_text=use_text)
    model.load_state_dict(state)  # strict: every saved parameter, of its shape, and no other
    classic = ClassicACModel(7, 7, 3)
    classic.image_conv.load_state_dict({k[len("image_conv.") :]: v for k, v in state.items() if "image_conv" in k})
    obss = [env.reset(seed=seed)[0] for seed in range(8)]
    preprocessed = preprocess(obss)
    with torch.no_grad():
        embedding = model._embed(preprocessed)
        assert embedding.shape == (8, 64)
        torch.testing.assert_close(embedding, classic(preprocessed.image))  # float rounding apart (patch_conv.py)


# --- the scripts: train, evaluate, visualize, and the choice read back -------------------------------------------


@pytest.fixture(scope="module")
def variant_models(tmp_path_factory):
    """One tiny model per variant (64 frames each), trained in this process: {variant: storage folder}."""
    storage = tmp_path_factory.mktemp("storage")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_RL_STORAGE", str(storage))
        for obs in VARIANTS:
            train.main(["--env", DOORKEY, "--model", obs, "--obs", obs, "--frames", "64", *TINY])
    return storage


@pytest.mark.parametrize("obs", VARIANTS)
def test_each_variant_trains_evaluates_and_visualizes(variant_models, obs, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(variant_models))
    status = checkpoints.load(variant_models / obs)
    assert status.architecture()["obs"] == obs and status.config["args"]["obs"] == obs
    assert status.num_frames == 64
    # evaluate and visualize are given no --obs: a model of another image shape would not load into their envs'
    out = tmp_path / "eval.json"
    evaluate.main(["--env", DOORKEY, "--model", obs, "--episodes", "2", "--procs", "2", "--json", str(out)])
    assert json.loads(out.read_text())["episodes"] == 2
    gif = tmp_path / "agent.gif"
    returns = visualize.main(["--env", DOORKEY, "--model", obs, "--gif", str(gif), "--episodes", "1"])
    assert len(returns) == 1 and gif.read_bytes()[:6] == b"GIF89a"
    capsys.readouterr()


def test_the_agent_sees_the_saved_variant(variant_models, monkeypatch):
    """Evaluate's envs are made with the model's --obs (the Agent then builds the model for their image shape)."""
    monkeypatch.setenv("TORCH_RL_STORAGE", str(variant_models))
    made = []
    real_make_envs = evaluate.make_envs

    def make_envs(*args, **kwargs):
        made.append(kwargs.get("obs"))
        return real_make_envs(*args, **kwargs)

    monkeypatch.setattr(evaluate, "make_envs", make_envs)
    evaluate.main(["--env", DOORKEY, "--model", "rgb", "--episodes", "1", "--procs", "1", "--json", "-"])
    assert made == ["rgb"]


def test_a_resumed_model_keeps_its_variant(variant_models, tmp_path, monkeypatch):
    storage = tmp_path / "storage"
    shutil.copytree(variant_models / "full", storage / "full")
    monkeypatch.setenv("TORCH_RL_STORAGE", str(storage))
    train.main(["--env", DOORKEY, "--model", "full", "--frames", "96", *TINY])  # no --obs
    status = checkpoints.load(storage / "full")
    assert status.num_frames == 96 and status.architecture()["obs"] == "full"


def test_a_checkpoint_without_the_key_is_partial(tmp_path):
    """Models saved before --obs saw the partial view."""
    assert checkpoints.Checkpoint(config={"env": DOORKEY}).architecture()["obs"] == "partial"
    status = load_fixture("doorkey_a2c")
    assert "obs" not in status["config"]
    assert checkpoints.from_dict(status).architecture()["obs"] == "partial"


def test_a_malformed_saved_variant_is_refused(tmp_path):
    status = load_fixture("doorkey_a2c")
    status["config"]["obs"] = "x-ray"
    with pytest.raises(UsageError, match=r"config\['obs'\] is not one of"):
        checkpoints.from_dict(status)


# --- one-line errors ----------------------------------------------------------------------------------------------


def error_of(script, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--obs", "full", "--batched"], "--batched steps MiniGrid's partial view only, not --obs full"),
        (["--obs", "rgb", "--batched"], "not --obs rgb; drop --batched"),
        (["--obs", "rgb-full", "--image-encoding", "onehot"], "--obs rgb-full gives pixels"),
        (["--obs", "lidar"], "invalid choice: 'lidar'"),
    ],
)
def test_train_refuses_what_a_variant_cannot_do_before_any_work(argv, fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    monkeypatch.setattr(train, "make_envs", lambda *a, **k: pytest.fail("envs made before the error"))
    line = error_of(train, ["--env", DOORKEY, "--model", "m", *TINY, *argv], capsys)
    assert fragment in line
    assert not (tmp_path / "m").exists()


def test_a_non_minigrid_env_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    line = error_of(train, ["--env", "CartPole-v1", "--model", "m", "--obs", "full", *TINY], capsys)
    assert "--obs full applies Minigrid's FullyObsWrapper, and CartPole-v1 is not a MiniGrid env" in line
    assert not (tmp_path / "m").exists()


def test_resuming_with_another_variant_is_refused(variant_models, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(variant_models))
    line = error_of(train, ["--env", DOORKEY, "--model", "rgb", "--obs", "full", "--frames", "999", *TINY], capsys)
    assert "--obs was 'rgb', now 'full'" in line
    line = error_of(train, ["--env", DOORKEY, "--model", "full", "--frames", "999", *TINY, "--batched"], capsys)
    assert "not --obs full; drop --batched" in line  # the model's own variant, read before any env is made
    assert checkpoints.load(variant_models / "full").num_frames == 64


def test_evaluate_batched_refuses_a_variant_model(variant_models, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(variant_models))
    line = error_of(evaluate, ["--env", DOORKEY, "--model", "rgb-full", "--batched"], capsys)
    assert "not --obs rgb-full; the model rgb-full was trained with it: drop --batched" in line


def test_a_recipes_batched_gives_way_to_a_variant(tmp_path, monkeypatch):
    """DoorKey-8x8's recipe sets --batched for speed: with --obs full it trains on Minigrid's envs instead."""
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    argv = ["--env", "MiniGrid-DoorKey-8x8-v0", "--model", "m", "--obs", "full", "--frames", "32", *TINY]
    train.main(argv)
    status = checkpoints.load(tmp_path / "m")
    assert status.config["args"]["batched"] is False and status.architecture()["obs"] == "full"


def test_evaluation_during_training_sees_the_variant(tmp_path, monkeypatch):
    """--eval-interval's envs are made with --obs too: the model being trained acts on them."""
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    argv = ["--env", DOORKEY, "--model", "m", "--obs", "full", "--frames", "64", "--eval-interval", "1"]
    train.main([*argv, "--eval-episodes", "2", *TINY])
    assert checkpoints.load(tmp_path / "m", best=True).architecture()["obs"] == "full"
