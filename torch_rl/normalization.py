"""Running normalisation of observations and rewards, the usual levers for continuous control."""

import torch


class RunningMeanStd:
    """Mean and variance of a stream of batches (Chan et al.'s parallel update), on any device."""

    def __init__(self, shape: tuple[int, ...] = (), device: str | torch.device | None = None, epsilon: float = 1e-4):
        self.mean = torch.zeros(shape, dtype=torch.float64, device=device)
        self.var = torch.ones(shape, dtype=torch.float64, device=device)
        self.count = epsilon

    def update(self, batch: torch.Tensor) -> None:
        batch = batch.detach().to(self.mean.device, torch.float64).reshape(-1, *self.mean.shape)
        batch_mean, batch_var, batch_count = batch.mean(0), batch.var(0, unbiased=False), batch.shape[0]
        delta = batch_mean - self.mean
        total = self.count + batch_count
        self.mean = self.mean + delta * batch_count / total
        self.var = (
            self.var * self.count + batch_var * batch_count + delta.pow(2) * self.count * batch_count / total
        ) / total
        self.count = total

    def state_dict(self) -> dict:
        return {"mean": self.mean.cpu(), "var": self.var.cpu(), "count": self.count}

    def load_state_dict(self, state: dict) -> None:
        self.mean = state["mean"].to(self.mean.device, torch.float64)
        self.var = state["var"].to(self.var.device, torch.float64)
        self.count = state["count"]


class ObservationNormalizer(RunningMeanStd):
    """``(obs - mean) / std`` clipped to ±``clip``; statistics are updated only while ``training``."""

    def __init__(self, shape: tuple[int, ...], device: str | torch.device | None = None, clip: float = 10.0):
        super().__init__(shape, device)
        self.clip = clip
        self.training = True

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.update(obs)
        mean, std = self.mean.to(obs.device, obs.dtype), self.var.sqrt().to(obs.device, obs.dtype)
        return ((obs - mean) / (std + 1e-8)).clamp(-self.clip, self.clip)


class RewardScaler:
    """Divides rewards by the running std of the discounted return (as SB3's VecNormalize): the value targets
    stay near unit scale, so the value loss does not swamp the policy's share of the clipped gradient."""

    def __init__(self, num_envs: int, discount: float, device: str | torch.device | None = None):
        self.returns = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self.stats = RunningMeanStd((), device)
        self.discount = discount

    def observe(self, rewards: torch.Tensor, dones: torch.Tensor) -> None:
        self.returns = self.returns * self.discount + rewards.to(torch.float64)
        self.stats.update(self.returns)
        self.returns = self.returns * (~dones)

    def scale(self, rewards: torch.Tensor) -> torch.Tensor:
        return rewards / (self.stats.var.sqrt().to(rewards.dtype) + 1e-8)
