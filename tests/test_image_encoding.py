"""One-hot MiniGrid images (--image-encoding onehot): exact codes, model shapes, and the starter scripts."""

import gymnasium as gym
import minigrid  # noqa: F401  (registers the MiniGrid envs)
import numpy as np
import pytest
import torch

from model import ACModel
from tests.test_scripts import DOORKEY, TINY_PPO, assert_one_line_error, load_status, run_script
from utils.format import ONEHOT_SIZES, get_obss_preprocessor, onehot_image


def test_onehot_image_marks_each_code_once_and_tells_key_from_ball():
    image = np.array([[[5, 1, 0], [6, 1, 0], [2, 5, 0], [4, 4, 2]]], dtype=np.uint8)  # key, ball, wall, locked door
    encoded = onehot_image(image)
    assert encoded.shape == (1, 4, sum(ONEHOT_SIZES)) and encoded.dtype == torch.float32
    assert torch.equal(encoded.sum(-1), torch.full((1, 4), 3.0))  # one mark per code
    types, colours, states = encoded.split(ONEHOT_SIZES, dim=-1)
    assert types.argmax(-1).tolist() == [[5, 6, 2, 4]]
    assert colours.argmax(-1).tolist() == [[1, 1, 5, 4]]
    assert states.argmax(-1).tolist() == [[0, 0, 0, 2]]


def test_the_preprocessor_and_the_model_agree_on_the_onehot_shape():
    env = gym.make(DOORKEY)
    obs, _ = env.reset(seed=0)
    obs_space, preprocess = get_obss_preprocessor(env.observation_space, use_text=False, image_encoding="onehot")
    assert obs_space["image"] == (7, 7, 20)
    batch = preprocess([obs, obs])
    assert batch.image.shape == (2, 7, 7, 20)
    torch.testing.assert_close(batch.image, onehot_image(np.stack([obs["image"]] * 2)))
    dist, value, _ = ACModel(obs_space, env.action_space, use_memory=True)(batch, torch.zeros(2, 128))
    assert value.shape == (2,) and dist.logits.shape == (2, env.action_space.n)


def test_an_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match="image_encoding"):
        get_obss_preprocessor(gym.make(DOORKEY).observation_space, image_encoding="bits")


def test_auto_encoding_is_onehot_with_memory_and_raw_without(tmp_path):
    run_script(
        "train", "--env", DOORKEY, "--model", "mem", "--frames", 128, "--recurrence", 4, *TINY_PPO, storage=tmp_path
    )
    run_script("train", "--env", DOORKEY, "--model", "ff", "--frames", 128, *TINY_PPO, storage=tmp_path)
    assert load_status(tmp_path / "mem")["config"]["image_encoding"] == "onehot"
    assert load_status(tmp_path / "mem")["model_state"]["image_conv.0.weight"].shape[1] == 20
    assert load_status(tmp_path / "ff")["config"]["image_encoding"] == "raw"
    assert load_status(tmp_path / "ff")["model_state"]["image_conv.0.weight"].shape[1] == 3


def test_train_evaluate_and_resume_with_onehot_images(tmp_path):
    run_script(
        "train",
        "--env",
        DOORKEY,
        "--model",
        "oh",
        "--frames",
        256,
        "--image-encoding",
        "onehot",
        *TINY_PPO,
        storage=tmp_path,
    )
    status = load_status(tmp_path / "oh")
    assert status["config"]["image_encoding"] == "onehot"
    assert status["model_state"]["image_conv.0.weight"].shape[1] == 20
    proc = run_script(
        "evaluate", "--env", DOORKEY, "--model", "oh", "--episodes", 2, "--procs", 2, "--json", "-", storage=tmp_path
    )
    assert '"episodes": 2' in proc.stdout
    proc = run_script(
        "train",
        "--env",
        DOORKEY,
        "--model",
        "oh",
        "--frames",
        512,
        "--image-encoding",
        "raw",
        *TINY_PPO,
        storage=tmp_path,
        check=False,
    )
    assert proc.returncode == 2
    assert_one_line_error(proc.stderr, "--image-encoding was 'onehot', now 'raw'")
    assert load_status(tmp_path / "oh")["num_frames"] == 256  # the model is untouched
    run_script("train", "--env", DOORKEY, "--model", "oh", "--frames", 512, *TINY_PPO, storage=tmp_path)  # auto
    assert load_status(tmp_path / "oh")["num_frames"] == 512


def test_a_memory_checkpoint_older_than_the_flag_resumes_and_evaluates_as_raw(tmp_path):
    run_script(
        "train",
        "--env",
        DOORKEY,
        "--model",
        "old",
        "--frames",
        128,
        "--recurrence",
        4,
        "--image-encoding",
        "raw",
        *TINY_PPO,
        storage=tmp_path,
    )
    path = tmp_path / "old" / "status.pt"
    status = torch.load(path, weights_only=False)
    del status["config"]["image_encoding"]
    torch.save(status, path)
    run_script(
        "train", "--env", DOORKEY, "--model", "old", "--frames", 256, "--recurrence", 4, *TINY_PPO, storage=tmp_path
    )
    assert load_status(tmp_path / "old")["num_frames"] == 256
    assert load_status(tmp_path / "old")["config"]["image_encoding"] == "raw"
    run_script("evaluate", "--env", DOORKEY, "--model", "old", "--episodes", 1, "--procs", 1, storage=tmp_path)
