"""Learning-rate schedules: linear reaches 0 at the frame budget, and a resumed run continues where it stopped."""

import io

import pytest
import torch

import torch_rl
from tests.envs import FixedLengthEnv
from tests.models import MLPModel

LR = 0.01


def make_algo(name, **kwargs):
    torch.manual_seed(0)
    algo_class = {"a2c": torch_rl.A2CAlgo, "ppo": torch_rl.PPOAlgo}[name]
    extra = {"batch_size": 8, "epochs": 1} if name == "ppo" else {}
    envs = [FixedLengthEnv(length=4) for _ in range(2)]
    return algo_class(envs, MLPModel(1, 2), num_frames_per_proc=4, lr=LR, num_workers=0, seed=0, **extra, **kwargs)


@pytest.mark.parametrize("name", ["a2c", "ppo"])
def test_a_linear_schedule_anneals_to_zero_at_the_frame_budget(name):
    with make_algo(name, lr_schedule="linear", total_frames=4 * 8) as algo:  # 4 updates of 8 frames
        used = [algo.update_parameters()["lr"] for _ in range(4)]
        assert used == pytest.approx([LR, 0.75 * LR, 0.5 * LR, 0.25 * LR])
        assert algo.optimizer.param_groups[0]["lr"] == 0
        assert algo.update_parameters()["lr"] == 0  # past the budget it stays at 0


def test_the_constant_schedule_keeps_the_learning_rate_and_has_no_scheduler():
    with make_algo("ppo") as algo:
        assert [algo.update_parameters()["lr"] for _ in range(3)] == [LR] * 3
        assert algo.lr_scheduler is None and "lr_scheduler" not in algo.state_dict()


def test_a_resumed_linear_schedule_continues_where_it_stopped():
    with make_algo("ppo", lr_schedule="linear", total_frames=5 * 8) as algo:
        uninterrupted = [algo.update_parameters()["lr"] for _ in range(4)]
    with make_algo("ppo", lr_schedule="linear", total_frames=5 * 8) as algo:
        first = [algo.update_parameters()["lr"] for _ in range(2)]
        saved = io.BytesIO()
        torch.save(algo.state_dict(), saved)
    saved.seek(0)
    with make_algo("ppo", lr_schedule="linear", total_frames=5 * 8) as resumed:
        resumed.load_state_dict(torch.load(saved, weights_only=True))
        rest = [resumed.update_parameters()["lr"] for _ in range(2)]
    assert first + rest == pytest.approx(uninterrupted)
    assert rest[0] < first[-1]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"lr_schedule": "linear"}, "total_frames"),
        ({"lr_schedule": "linear", "total_frames": 0}, "total_frames"),
        ({"lr_schedule": "cosine", "total_frames": 10}, "lr_schedule"),
    ],
)
def test_a_bad_schedule_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_algo("a2c", **kwargs)
