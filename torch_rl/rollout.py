"""A rollout: T steps of N envs, stored as (T, N) tensors while it is collected, then flattened for training.

``Rollout`` holds what the algorithms write at each step (``add_step``), computes the advantages (GAE with
terminated/truncated, see torch_rl/gae.py), flattens everything into the ``exps`` DictList of N*T rows
(env-major: rows i*T .. i*T+T-1 are env i's steps in time order) and hands out the sequence starts that
mini-batches are made of. ``EpisodeStatistics`` follows the episodes across rollouts for the logs.
"""

from collections import deque

import torch

from torch_rl.batching import flatten_steps, stack_steps
from torch_rl.dictlist import DictList
from torch_rl.gae import compute_gae


class EpisodeStatistics:
    """Return, reshaped return and length of the episodes that end, written per step into buffers on the device
    and read once per rollout (no per-step synchronisation)."""

    KEYS = ("return", "reshaped_return", "num_frames")

    def __init__(self, num_steps: int, num_envs: int, device: torch.device):
        self.num_envs = num_envs
        self.running = torch.zeros(3, num_envs, device=device)  # the episodes under way, one row per key
        self.ones = torch.ones(num_envs, device=device)  # a step's frame count
        self.at_step = torch.zeros(num_steps, 3, num_envs, device=device)
        # The last N finished episodes, padded with zeros (as torch-ac) so that the statistics are never empty.
        self.history = {key: deque([0] * num_envs, maxlen=num_envs) for key in self.KEYS}
        self.num_ended = 0

    def add_step(self, t: int, reward: torch.Tensor, reshaped_reward: torch.Tensor, done: torch.Tensor) -> None:
        self.running += torch.stack((reward, reshaped_reward, self.ones))
        self.at_step[t] = self.running
        self.running *= ~done

    def logs(self, done: torch.Tensor) -> dict:
        """The logs of a rollout whose (T, N) ``done`` says where episodes ended."""
        stats = self.at_step.transpose(1, 2)[done].cpu()  # episodes in the order they ended
        finished = {
            "return": stats[:, 0].tolist(),
            "reshaped_return": stats[:, 1].tolist(),
            "num_frames": [int(n) for n in stats[:, 2].tolist()],
        }
        for key, values in finished.items():
            self.history[key].extend(values)
        self.num_ended += len(stats)
        # Like torch-ac: report at least the last N finished episodes, so that a rollout where few episodes
        # end still shows a meaningful mean; before N episodes have ended, zeros pad the lists to N entries.
        if len(stats) < self.num_envs:
            finished = {key: list(values) for key, values in self.history.items()}
        return {
            "return_per_episode": finished["return"],
            "reshaped_return_per_episode": finished["reshaped_return"],
            "num_frames_per_episode": finished["num_frames"],
            "num_padding_entries": max(0, self.num_envs - self.num_ended),  # leading zeros, not episodes
            "num_episodes": len(stats),
        }


class Rollout:
    """The (T, N) storage of one rollout, reused from one rollout to the next.

    ``memory_size``: the model's memory size for a recurrent model, else None (no memories are stored).
    """

    def __init__(self, num_steps: int, num_envs: int, device: torch.device, memory_size: int | None = None):
        T, N = num_steps, num_envs
        self.num_steps, self.num_envs, self.device = T, N, device
        self.num_frames = T * N
        self.obs = [None] * T  # the model's input at each step (whatever preprocess_obss returns)
        self.obs_steps = None  # the same, stacked to (T, N, ...) when time_major_obs asks
        self.actions = None  # allocated at the first step, when the action's shape and dtype are known
        self.values = torch.zeros(T, N, device=device)
        self.log_probs = torch.zeros(T, N, device=device)
        self.rewards = torch.zeros(T, N, device=device)  # reshaped, if reshape_reward is given
        self.terminateds = torch.zeros(T, N, dtype=torch.bool, device=device)
        self.truncateds = torch.zeros(T, N, dtype=torch.bool, device=device)
        self.final_values = torch.zeros(T, N, device=device)  # V(final observation) where truncated, else 0
        self.masks = torch.zeros(T, N, device=device)  # 0 where the memory was zeroed before the step
        self.memories = None if memory_size is None else torch.zeros(T, N, memory_size, device=device)
        self.start_memory = None  # the memory before step 0
        self.episodes = EpisodeStatistics(T, N, device)

    def add_step(
        self,
        t: int,
        *,
        obs,
        action: torch.Tensor,
        value: torch.Tensor,
        log_prob: torch.Tensor,
        mask: torch.Tensor,
        memory: torch.Tensor | None,
        reward: torch.Tensor,
        reshaped_reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
        final_value: torch.Tensor,
    ) -> None:
        """Stores step ``t`` of every env: its input, what the policy did, and what the envs answered (``reward``
        as the env gave it, ``reshaped_reward`` as training uses it)."""
        if self.actions is None:
            self.actions = torch.zeros((self.num_steps, *action.shape), dtype=action.dtype, device=self.device)
            self._step_rows = [self._rows(t) for t in range(self.num_steps)]
        self.obs[t] = obs
        step = [action, value, log_prob, mask, reshaped_reward, terminated, truncated, final_value]
        if self.memories is not None:
            if t == 0:
                self.start_memory = memory
            step.append(memory)
        # one call copies them all: at small batches each copy's dispatch costs more than its bytes (docs/speed.md)
        torch._foreach_copy_(self._step_rows[t], step)
        self.episodes.add_step(t, reward, reshaped_reward, terminated | truncated)

    def _rows(self, t: int) -> list[torch.Tensor]:
        """Row ``t`` of each (T, N, ...) buffer, in ``add_step``'s order."""
        buffers = [self.actions, self.values, self.log_probs, self.masks, self.rewards, self.terminateds]
        buffers += [self.truncateds, self.final_values] + ([self.memories] if self.memories is not None else [])
        return [buffer[t] for buffer in buffers]

    def advantages(
        self, last_values: torch.Tensor, discount: float, gae_lambda: float, rewards: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(advantages, returns), each (T, N), by GAE; ``last_values`` (N,) is V of the observation after the
        rollout; ``rewards`` replaces the stored ones (e.g. scaled)."""
        rewards = self.rewards if rewards is None else rewards
        return compute_gae(
            rewards,
            self.values,
            last_values,
            self.terminateds,
            self.truncateds,
            self.final_values,
            discount,
            gae_lambda,
        )

    def flatten(self, rewards: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor) -> DictList:
        """The rollout as ``exps``: N*T rows, env-major, with ``obs, action, value, reward, advantage, returnn,
        log_prob`` (+ ``memory, mask`` for a recurrent model)."""
        # env-major in one copy (a stack then a transposed copy was 47 ms of a 4,096 x 32 rollout's 194 ms)
        obs = stack_steps(self.obs, env_major=True)
        if not isinstance(obs, (torch.Tensor, DictList)):
            raise TypeError("preprocess_obss must return a tensor or a DictList of tensors")
        self.obs_steps = None
        exps = DictList(
            obs=flatten_steps(obs, transpose=False),
            action=flatten_steps(self.actions),
            value=flatten_steps(self.values),
            reward=flatten_steps(rewards),
            advantage=flatten_steps(advantages),
            returnn=flatten_steps(returns),
            log_prob=flatten_steps(self.log_probs),
        )
        if self.memories is not None:
            exps.memory = flatten_steps(self.memories)
            exps.mask = flatten_steps(self.masks)
        return exps

    def time_major_obs(self):
        """The rollout's inputs as T*N rows, time-major (row t*N + i is env i at step t), as stored (stacked at the
        first call after ``flatten``: only recurrent models ask for them)."""
        if self.obs_steps is None:
            self.obs_steps = stack_steps(self.obs)
        return flatten_steps(self.obs_steps, transpose=False)

    def episode_logs(self) -> dict:
        """Episode statistics of the rollout (see EpisodeStatistics.logs) and its ``num_frames``."""
        logs = self.episodes.logs(self.terminateds | self.truncateds)
        logs["num_frames"] = self.num_frames
        return logs

    # ------------------------------------------------------------------------------- mini-batches of sequences
    def sequence_starts(self, recurrence: int) -> torch.Tensor:
        """Rows of ``exps`` where a sequence of ``recurrence`` steps starts (never across the rollout's end)."""
        return torch.arange(0, self.num_frames, recurrence, device=self.device)

    def shuffled_batches(self, recurrence: int, batch_size: int) -> list[torch.Tensor]:
        """The sequence starts, shuffled, in mini-batches of ``batch_size / recurrence`` sequences."""
        starts = self.sequence_starts(recurrence)
        starts = starts[torch.randperm(len(starts), device=self.device)]
        return list(starts.split(max(1, batch_size // recurrence)))


def sequence_rows(starts: torch.Tensor, num_steps: int) -> torch.Tensor:
    """The ``exps`` rows of ``num_steps``-step sequences starting at ``starts``, time-major (row t*B + i is step
    t of sequence i)."""
    steps = torch.arange(num_steps, device=starts.device).unsqueeze(1)
    return (starts.unsqueeze(0) + steps).flatten()
