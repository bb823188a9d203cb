"""Advantage Actor-Critic (Mnih et al., 2016), synchronous: one RMSprop step per rollout."""

from collections.abc import Sequence

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import Distribution

from torch_rl.algos.base import BaseAlgo, PreprocessObss, ReshapeReward, _entropy, _log_prob
from torch_rl.algos.checks import accepts_torch_rl_order, check_number
from torch_rl.dictlist import DictList
from torch_rl.exploration import ExplorationBonus
from torch_rl.vec_env import EnvBatch


class A2CAlgo(BaseAlgo):
    """A2C. Parameters as BaseAlgo (its keyword-only ones too), plus ``rmsprop_alpha`` and ``rmsprop_eps`` of the
    RMSprop optimizer.

    ``num_frames_per_proc=None`` means 5 steps per env and update, the usual A2C setting.
    """

    @accepts_torch_rl_order
    def __init__(
        self,
        envs: Sequence[gym.Env] | gym.vector.VectorEnv | EnvBatch,
        acmodel: nn.Module,
        device: str | torch.device | None = None,
        num_frames_per_proc: int | None = None,
        discount: float = 0.99,
        lr: float = 0.001,
        gae_lambda: float = 0.95,
        entropy_coef: float = 0.01,
        value_loss_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        recurrence: int = 4,
        rmsprop_alpha: float = 0.99,
        rmsprop_eps: float = 1e-8,
        preprocess_obss: PreprocessObss | None = None,
        reshape_reward: ReshapeReward | None = None,
        seed: int | None = None,
        num_workers: int | None = None,
        normalize_rewards: bool = False,
        *,
        exploration_bonus: ExplorationBonus | None = None,
        exploration_coef: float = 0.01,
        lr_schedule: str = "constant",
        total_frames: int | None = None,
        compile: bool = False,
    ):
        num_frames_per_proc = 5 if num_frames_per_proc is None else num_frames_per_proc
        check_number("rmsprop_alpha", rmsprop_alpha, 0, 1, high_open=True)
        check_number("rmsprop_eps", rmsprop_eps, 0, low_open=True)
        super().__init__(
            envs,
            acmodel,
            device,
            num_frames_per_proc,
            discount,
            lr,
            gae_lambda,
            entropy_coef,
            value_loss_coef,
            max_grad_norm,
            recurrence,
            preprocess_obss,
            reshape_reward,
            seed,
            num_workers,
            normalize_rewards,
            exploration_bonus=exploration_bonus,
            exploration_coef=exploration_coef,
            lr_schedule=lr_schedule,
            total_frames=total_frames,
            compile=compile,
        )
        self.optimizer = torch.optim.RMSprop(
            self.acmodel.parameters(), lr, alpha=rmsprop_alpha, eps=rmsprop_eps, foreach=True
        )  # one fused call over all parameters
        self._schedule_lr()

    def compute_loss(self, sb: DictList, dist: Distribution, value: torch.Tensor) -> tuple[torch.Tensor, dict]:
        entropy = _entropy(dist).mean()
        policy_loss = -(_log_prob(dist, sb.action) * sb.advantage).mean()
        value_loss = (value - sb.returnn).pow(2).mean()
        loss = policy_loss - self.entropy_coef * entropy + self.value_loss_coef * value_loss
        return loss, {
            "entropy": entropy.detach(),
            "value": value.detach().mean(),
            "policy_loss": policy_loss.detach(),
            "value_loss": value_loss.detach(),
        }

    def optimize(self, exps: DictList) -> list[dict]:
        """One gradient step on the whole rollout."""
        return [self.optimize_batch(exps, self.sequence_starts())]
