"""Evaluation: finished episodes of a policy, counted fairly, and their statistics.

``run_episodes`` is the one episode runner: scripts.evaluate runs a saved model with it, and training
(``Evaluator``) runs the current policy on envs of its own every ``--eval-interval`` updates.

An episode *succeeds* if its return is > 0 (MiniGrid gives a positive reward only on reaching the goal).
"""

import copy

import numpy as np
import torch

import torch_rl
from torch_rl.vec_env import EnvBatch, VectorEnvBatch, actions_for_env
from utils.agent import Policy
from utils.env import make_batched_env, make_envs

EVAL_ENVS = ("same", "real")  # the training backend, or Minigrid's own envs
EVAL_SEED_OFFSET = 1_000_003  # evaluation envs never share a training env's seed


def run_episodes(env_batch, agent, episodes, action_space, seed=None):
    """Runs ``episodes`` episodes on ``env_batch`` (a torch_rl EnvBatch) with ``agent`` (``get_actions``,
    ``analyze_feedbacks``, as utils.agent.Policy); the envs are first reset with ``seed``.

    Env i counts its first ``quota[i]`` episodes (the episodes split evenly over the envs) and the loop stops
    when every env has its share, so that short episodes are not over-represented.
    Returns (returns, lengths, frames stepped), returns and lengths env by env.
    """
    n = env_batch.num_envs
    quotas = [episodes // n + (1 if i < episodes % n else 0) for i in range(n)]
    returns = [[] for _ in range(n)]
    lengths = [[] for _ in range(n)]
    episode_return = np.zeros(n, dtype=np.float64)
    episode_length = np.zeros(n, dtype=np.int64)
    obss = env_batch.reset() if seed is None else env_batch.reset(seed=seed)
    frames_stepped = 0
    while any(len(returns[i]) < quotas[i] for i in range(n)):
        actions = agent.get_actions(obss)
        obss, rewards, terminated, truncated, _ = env_batch.step(actions_for_env(actions, action_space))
        rewards, terminated, truncated = (to_numpy(x) for x in (rewards, terminated, truncated))
        frames_stepped += n
        episode_return += np.asarray(rewards, dtype=np.float64)
        episode_length += 1
        dones = np.logical_or(terminated, truncated)
        agent.analyze_feedbacks(dones)
        for i in np.flatnonzero(dones):
            if len(returns[i]) < quotas[i]:
                returns[i].append(float(episode_return[i]))
                lengths[i].append(int(episode_length[i]))
            episode_return[i] = 0.0
            episode_length[i] = 0
    return [r for env in returns for r in env], [f for env in lengths for f in env], frames_stepped


def to_numpy(x):
    return x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def stats(values) -> dict:
    values = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
    }


def episode_statistics(returns, lengths) -> dict:
    """``return_{mean,std,min,max}``, ``num_frames_{mean,std,min,max}`` and ``success_rate`` of episodes."""
    result = {}
    for prefix, values in (("return", returns), ("num_frames", lengths)):
        for stat, value in stats(values).items():
            result[f"{prefix}_{stat}"] = int(value) if prefix == "num_frames" and stat in ("min", "max") else value
    result["success_rate"] = float(np.mean(np.asarray(returns) > 0))
    return result


def make_eval_env_batch(
    env_id: str, num_envs: int, batched: bool, eval_env: str, device, seed: int, obs: str = "partial"
) -> EnvBatch:
    """The envs an evaluation during training runs on: the training backend (``eval_env`` "same": torch_rl's
    BatchedMiniGridEnv with ``batched``, else Minigrid's envs) or Minigrid's envs ("real"), seeing the model's
    ``obs`` variant; stepped in this process, seeded apart from the training envs."""
    if eval_env not in EVAL_ENVS:
        raise ValueError(f"eval_env must be one of {EVAL_ENVS}, got {eval_env!r}")
    seed = seed + EVAL_SEED_OFFSET
    if batched and eval_env == "same":
        return VectorEnvBatch(make_batched_env(env_id, num_envs, device=device, seed=seed))
    return torch_rl.ParallelEnv(make_envs(env_id, num_envs, seed=seed, obs=obs), num_workers=0)


class Evaluator:
    """Runs ``episodes`` episodes of the policy being trained on ``env_batch`` (its own envs), each evaluation
    from the same env seeds and sampling seed, so that evaluations compare policies, not luck.

    The policy acts with a frozen copy of the preprocessor (evaluation moves no training statistics), and the
    random number generators of training are left as they were (its run does not depend on evaluating)."""

    def __init__(self, env_batch: EnvBatch, episodes: int, seed: int, argmax: bool = False):
        self.env_batch = env_batch
        self.episodes = episodes
        self.seed = seed + EVAL_SEED_OFFSET
        self.argmax = argmax

    def __call__(self, model: torch.nn.Module, preprocess_obss, device) -> dict:
        """Statistics of the episodes (see episode_statistics) and ``episodes``, ``frames``."""
        device = torch.device(device)
        frozen = copy.deepcopy(preprocess_obss)
        if hasattr(frozen, "eval"):
            frozen.eval()
        was_training = model.training
        model.eval()
        cuda_devices = [device] if device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=cuda_devices):
                torch.manual_seed(self.seed)
                policy = Policy(model, frozen, device, self.argmax, num_envs=self.env_batch.num_envs)
                returns, lengths, frames = run_episodes(
                    self.env_batch, policy, self.episodes, self.env_batch.single_action_space, seed=self.seed
                )
        finally:
            model.train(was_training)
        return episode_statistics(returns, lengths) | {"episodes": len(returns), "frames": frames}

    def close(self) -> None:
        self.env_batch.close()
