"""Evaluation during training: K finished episodes of the current policy on envs of its own, repeatable, and
without side effects on training (its statistics, its random numbers, the model's mode)."""

import gymnasium as gym
import pytest
import torch

from model import ACModel
from tests.test_checkpoint import copy_old_model, one_line_error
from torch_rl.vec_env import VectorEnvBatch
from utils.evaluation import Evaluator, make_eval_env_batch
from utils.format import get_obss_preprocessor

DOORKEY = "MiniGrid-DoorKey-5x5-v0"


def make_policy(env_id, recurrent=False, normalize=False):
    torch.manual_seed(0)
    env = gym.make(env_id)
    obs_space, preprocess_obss = get_obss_preprocessor(env.observation_space, normalize)
    return ACModel(obs_space, env.action_space, use_memory=recurrent), preprocess_obss


@pytest.mark.parametrize("recurrent", [False, True])
def test_evaluation_runs_k_episodes_and_repeats_itself(recurrent):
    model, preprocess_obss = make_policy(DOORKEY, recurrent)
    evaluate = Evaluator(make_eval_env_batch(DOORKEY, 2, False, "same", "cpu", seed=1), episodes=3, seed=1)
    try:
        torch.manual_seed(1)
        first = evaluate(model, preprocess_obss, "cpu")
        torch.manual_seed(2)  # training's random numbers do not decide the evaluation's
        second = evaluate(model, preprocess_obss, "cpu")
    finally:
        evaluate.close()
    assert first["episodes"] == 3 and first["frames"] >= 3 * first["num_frames_min"]
    assert 0 <= first["success_rate"] <= 1 and first["num_frames_max"] <= 250  # DoorKey-5x5: 250 steps at most
    assert first == second  # same env seeds, same sampling seed


def test_evaluation_leaves_training_statistics_random_numbers_and_mode_as_they_were():
    model, preprocess_obss = make_policy("CartPole-v1", normalize=True)
    preprocess_obss(torch.randn(4, 4).numpy())  # some statistics of "training"
    before = {k: v.clone() for k, v in preprocess_obss.state_dict()["obs_normalizer"].items() if k != "count"}
    count = preprocess_obss.normalizer.count
    evaluate = Evaluator(make_eval_env_batch("CartPole-v1", 2, False, "real", "cpu", seed=0), episodes=2, seed=0)
    torch.manual_seed(5)
    expected_next = torch.rand(3)
    torch.manual_seed(5)
    try:
        evaluate(model, preprocess_obss, "cpu")
    finally:
        evaluate.close()
    assert torch.equal(torch.rand(3), expected_next)
    assert preprocess_obss.normalizer.count == count and preprocess_obss.normalizer.training
    after = preprocess_obss.state_dict()["obs_normalizer"]
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert model.training


def test_the_same_backend_is_the_batched_env_when_training_is_batched_and_real_is_minigrid():
    same = make_eval_env_batch(DOORKEY, 2, True, "same", "cpu", seed=0)
    real = make_eval_env_batch(DOORKEY, 2, True, "real", "cpu", seed=0)
    try:
        assert isinstance(same, VectorEnvBatch)
        assert not isinstance(real, VectorEnvBatch)
        model, preprocess_obss = make_policy(DOORKEY)
        for env_batch in (same, real):
            result = Evaluator(env_batch, episodes=2, seed=0)(model, preprocess_obss, "cpu")
            assert result["episodes"] == 2
    finally:
        same.close()
        real.close()


# ------------------------------------------------------------------------------------------------------- --best
@pytest.fixture
def storage(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_RL_STORAGE", str(tmp_path))
    threads = torch.get_num_threads()
    yield tmp_path
    torch.set_num_threads(threads)


@pytest.mark.parametrize("script", ["evaluate", "visualize"])
def test_best_reads_status_best_and_says_so_when_there_is_none(script, storage, capsys):
    from scripts.evaluate import main as evaluate
    from scripts.visualize import main as visualize

    main = {"evaluate": evaluate, "visualize": visualize}[script]
    model_dir = copy_old_model("doorkey_a2c", storage)
    argv = ["--env", DOORKEY, "--model", "doorkey_a2c", "--episodes", "1", "--best"]
    argv += ["--procs", "1", "--workers", "0"] if script == "evaluate" else ["--gif", str(storage / "x.gif")]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    line = one_line_error(capsys, exit_info)
    assert "no best checkpoint" in line and "--eval-interval" in line
    # a best checkpoint that differs from the last one: a malformed copy, so that the error shows which was read
    status = torch.load(model_dir / "status.pt", weights_only=True)
    status["update"] = "damaged"
    torch.save(status, model_dir / "status_best.pt")
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert "status_best.pt" in one_line_error(capsys, exit_info)
    status["update"] = 3
    torch.save(status, model_dir / "status_best.pt")
    capsys.readouterr()
    result = main(argv)
    if script == "evaluate":
        assert result["episodes"] == 1 and "doorkey_a2c (best checkpoint)" in capsys.readouterr().out
