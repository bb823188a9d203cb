"""torch-ac's ``ParallelEnv``: per-env lists in and out, over torch_rl's env workers.

torch-ac 1.4 and the starter files built on it (e.g. their evaluation loop) use ``ParallelEnv(envs)`` with
``reset() -> list of observations`` and ``step(actions) -> (obs, rewards, terminateds, truncateds, infos)``, one
entry per env, an env whose episode ended being reset in the same step. This class gives that interface over
``torch_rl.vec_env.ParallelEnv`` (several envs per worker process, observations through shared memory), which
the algorithms use directly with stacked batches.
"""

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from torch_rl import vec_env
from torch_rl.batching import unstack_obs


class ParallelEnv:
    """Steps ``envs`` in worker processes (``num_workers`` as in ``torch_rl.ParallelEnv``), torch-ac's way.

    Unlike torch-ac, an episode cut by a time limit (``truncated``) also starts over in the same step, as one that
    terminated. The envs' own ``info`` dicts do not come back from the workers: ``infos[i]`` is empty, or holds
    ``final_obs``, the last observation of the episode that env ``i`` ended in this step.
    """

    def __init__(self, envs: Sequence[gym.Env], num_workers: int | None = None):
        self.envs = list(envs)
        self.env_batch = vec_env.ParallelEnv(self.envs, num_workers=num_workers)
        self.observation_space = self.envs[0].observation_space
        self.action_space = self.envs[0].action_space

    @property
    def num_envs(self) -> int:
        return self.env_batch.num_envs

    def __len__(self) -> int:
        return self.env_batch.num_envs

    def reset(self, seed: int | None = None) -> list[Any]:
        """The first observation of every env (env i seeded with ``seed + i`` when ``seed`` is given)."""
        return unstack_obs(self.env_batch.reset(seed=seed))

    def step(
        self, actions: Sequence[Any] | np.ndarray | torch.Tensor
    ) -> tuple[list[Any], list[float], list[bool], list[bool], list[dict[str, Any]]]:
        """One action per env; returns lists of observations, rewards, terminateds, truncateds and infos."""
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        actions = np.asarray(actions)
        if len(actions) != self.num_envs:
            raise ValueError(f"step needs one action per env ({self.num_envs}), got {len(actions)}")
        obs, rewards, terminateds, truncateds, final_obs = self.env_batch.step(actions)
        infos = [{} for _ in range(self.num_envs)]
        for i, last_obs in final_obs.items():
            infos[i]["final_obs"] = last_obs
        return unstack_obs(obs), rewards.tolist(), terminateds.tolist(), truncateds.tolist(), infos

    def close(self) -> None:
        """Stops the worker processes."""
        self.env_batch.close()

    def __enter__(self) -> "ParallelEnv":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
