"""The training loop (utils/training.py) outside the CLI: every rank runs it alike, rank 0 alone writes."""

import argparse

import pytest
import torch

import torch_rl
from tests.envs import FixedLengthEnv
from tests.models import MLPModel
from utils import checkpoint as checkpoints
from utils.training import NonFiniteOutputs, Trainer, update_parameters


def _args(**overrides):
    values = dict(frames=64, log_interval=1, save_interval=1, stop_at_return=None, model="m", quiet=True, tb=False)
    values.update(lr=0.001, optim_eps=1e-8, env="TorchRLTest-Fixed", algo="a2c", use_memory=False, use_text=False)
    values.update(image_encoding="raw")
    return argparse.Namespace(**{**values, **overrides})


def _algo(model=None):
    envs = [FixedLengthEnv(length=3), FixedLengthEnv(length=5)]
    return torch_rl.A2CAlgo(
        envs, model or MLPModel(1, 2), num_frames_per_proc=8, preprocess_obss=_Preprocessor(), num_workers=0, seed=0
    )


class _Preprocessor:
    """The default preprocessor, with the (empty) state that a checkpoint saves."""

    def __call__(self, obss, device=None):
        return torch_rl.default_preprocess_obss(obss, device=device)

    def state_dict(self):
        return {}


def test_a_rank_other_than_0_runs_every_update_and_its_hooks_but_writes_nothing(tmp_path):
    algo = _algo()
    trainer = Trainer(algo, algo.preprocess_obss, checkpoints.Checkpoint(), _args(), str(tmp_path / "m"), rank=1)
    seen = []
    trainer.before_update.append(lambda t: seen.append(("before", t.checkpoint.update)))
    trainer.after_update.append(lambda t, logs: seen.append(("after", t.checkpoint.update, logs["num_frames"])))
    trainer.start("test")
    assert trainer.run() == 0
    assert trainer.checkpoint.update == 4 and trainer.checkpoint.num_frames == 64
    assert seen == [x for u in range(4) for x in (("before", u), ("after", u + 1, 16))]
    assert not (tmp_path / "m").exists()


def test_rank_0_saves_and_logs_every_update_in_the_model_folder(tmp_path):
    algo = _algo()
    model_dir = tmp_path / "m"
    trainer = Trainer(algo, algo.preprocess_obss, checkpoints.Checkpoint(), _args(), str(model_dir), rank=0)
    trainer.start("test")
    assert trainer.run() == 0
    assert checkpoints.load(str(model_dir)).update == 4
    assert len((model_dir / "log.csv").read_text().splitlines()) == 1 + 4


class _ValidatingNaNModel(MLPModel):
    def forward(self, obs):
        dist, value = super().forward(obs)
        return torch.distributions.Categorical(logits=dist.logits * float("nan"), validate_args=True), value


class _ValueErrorModel(MLPModel):
    def forward(self, obs):
        raise ValueError("a bug of the model's own")


def test_a_distribution_refusing_nan_parameters_is_non_finite_outputs_and_other_value_errors_pass():
    with _algo(_ValidatingNaNModel(1, 2)) as algo, pytest.raises(NonFiniteOutputs, match="not finite"):
        update_parameters(algo)
    with _algo(_ValueErrorModel(1, 2)) as algo, pytest.raises(ValueError, match="a bug of the model's own"):
        update_parameters(algo)
