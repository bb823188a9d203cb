"""What A2C and PPO share: collecting a rollout, computing advantages, and one optimisation step.

Each algorithm file only says how its loss is computed from a mini-batch and how it iterates over the data.
"""

from abc import ABC, abstractmethod
from collections import deque

import torch

from torch_rl import distributed
from torch_rl.batching import flatten_steps, index_obs, stack_steps, unstack_obs
from torch_rl.dictlist import DictList
from torch_rl.gae import compute_gae
from torch_rl.normalization import RewardScaler
from torch_rl.preprocess import default_preprocess_obss
from torch_rl.vec_env import actions_for_env, make_env_batch


class BaseAlgo(ABC):
    """Collects ``num_frames_per_proc`` steps of every env, then updates ``acmodel`` (see A2CAlgo, PPOAlgo).

    Parameters
    ----------
    envs : list of gymnasium.Env, or gymnasium.vector.VectorEnv (autoreset_mode SAME_STEP)
        A list is stepped in worker processes, several envs per process (``num_workers``, default one per
        core; 0 steps them in this process).
    acmodel : nn.Module implementing torch_rl.ACModel or torch_rl.RecurrentACModel
    device : where the model and the experience tensors live (default: where the model's parameters are).
    num_frames_per_proc : steps collected per env and update.
    discount, gae_lambda : gamma and lambda of GAE.
    lr : learning rate.
    entropy_coef, value_loss_coef : weights of the entropy bonus and the value loss.
    max_grad_norm : gradients are clipped to this global norm.
    recurrence : steps the gradient is back-propagated through for a recurrent model (ignored otherwise);
        must divide num_frames_per_proc.
    preprocess_obss : ``f(obss, device=None)`` turning a list of N observations (one per env) into the model's
        input (a tensor or a DictList of tensors); default: ``torch_rl.default_preprocess_obss``. A function
        with the attribute ``accepts_stacked_obs = True`` gets the envs' stacked batch instead (an array of shape
        (N, ...), or a dict of arrays, tensors and lists), which saves splitting it into N observations per step.
    reshape_reward : ``f(obs, action, reward, done) -> reward`` applied per env and step (logs keep both).
    seed : seeds the envs' first reset (env i gets seed + i); seed torch yourself for the policy's sampling.
    normalize_rewards : train on rewards divided by the running std of the discounted return (logs keep the
        raw and reshaped returns); helps continuous control, where returns are large.

    Under torch.distributed (a process group of several ranks, e.g. started by torchrun), gradients are
    averaged over ranks before each optimizer step (see torch_rl.distributed): give each rank the same
    ``num_envs`` and hyper-parameters, its own env seeds, and the same initial parameters.
    """

    def __init__(
        self,
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
        seed=None,
        num_workers=None,
        normalize_rewards=False,
    ):
        if num_frames_per_proc < 1:
            raise ValueError(f"num_frames_per_proc must be at least 1, got {num_frames_per_proc}")
        self.recurrent = bool(getattr(acmodel, "recurrent", False))
        self.recurrence = recurrence if self.recurrent else 1
        # A model that runs whole sequences at once (see RecurrentACModel.forward_sequence) trains faster.
        self.sequence_model = self.recurrent and callable(getattr(acmodel, "forward_sequence", None))
        if self.recurrence < 1:
            raise ValueError(f"recurrence must be at least 1, got {recurrence}")
        if num_frames_per_proc % self.recurrence != 0:
            raise ValueError(
                f"recurrence ({self.recurrence}) must divide num_frames_per_proc ({num_frames_per_proc}): "
                f"choose e.g. recurrence {_divisor_below(num_frames_per_proc, self.recurrence)}"
            )
        self.env = make_env_batch(envs, num_workers)
        self.device = torch.device(device) if device is not None else next(acmodel.parameters()).device
        self.acmodel = acmodel.to(self.device)
        self.acmodel.train()
        self.num_frames_per_proc = num_frames_per_proc
        self.discount = discount
        self.lr = lr
        self.gae_lambda = gae_lambda
        self.entropy_coef = entropy_coef
        self.value_loss_coef = value_loss_coef
        self.max_grad_norm = max_grad_norm
        self.preprocess_obss = preprocess_obss or default_preprocess_obss
        self.stacked_obs_input = bool(getattr(self.preprocess_obss, "accepts_stacked_obs", False))
        self.reshape_reward = reshape_reward
        self.num_procs = self.env.num_envs
        self.num_frames = self.num_frames_per_proc * self.num_procs
        self.action_space = self.env.single_action_space
        self.tensor_env = bool(getattr(getattr(self.env, "env", None), "accepts_torch_actions", False))

        T, N, device = self.num_frames_per_proc, self.num_procs, self.device
        self.obs = self.env.reset(seed=seed)
        self.preprocessed_obs = None  # self.obs as the model's input, once computed
        self.mask = torch.ones(N, device=device)
        self.masks = torch.zeros(T, N, device=device)
        if self.recurrent:
            self.memory = torch.zeros(N, self.acmodel.memory_size, device=device)
            self.memories = torch.zeros(T, N, self.acmodel.memory_size, device=device)
        self.values = torch.zeros(T, N, device=device)
        self.rewards = torch.zeros(T, N, device=device)
        self.log_probs = torch.zeros(T, N, device=device)
        self.terminateds = torch.zeros(T, N, dtype=torch.bool, device=device)
        self.truncateds = torch.zeros(T, N, dtype=torch.bool, device=device)
        self.final_values = torch.zeros(T, N, device=device)
        self.actions = None  # allocated at the first step, when the action's shape and dtype are known
        self.collected_exps = None

        # Episode statistics are written per step into buffers and read once per rollout (no per-step sync).
        self.episode_return = torch.zeros(N, device=device)
        self.episode_reshaped_return = torch.zeros(N, device=device)
        self.episode_num_frames = torch.zeros(N, device=device)
        self.step_stats = torch.zeros(T, 3, N, device=device)
        self.reward_scaler = RewardScaler(N, discount, device) if normalize_rewards else None
        # The last N finished episodes, padded with zeros (as torch-ac) so that the statistics are never empty.
        self.history = {key: deque([0] * N, maxlen=N) for key in ("return", "reshaped_return", "num_frames")}
        self.num_episodes_ended = 0

    # ----------------------------------------------------------------------------------------------- collection
    def _model_step(self, obs, memory=None, mask=None):
        if self.recurrent:
            return self.acmodel(obs, memory * mask.unsqueeze(1))
        dist, value = self.acmodel(obs)
        return dist, value, None

    def collect_experiences(self):
        """Runs every env for ``num_frames_per_proc`` steps; returns (exps, logs).

        ``exps`` is a DictList of N*T rows ordered env by env (rows i*T .. i*T+T-1 are env i's steps in time
        order) with ``obs, action, value, reward, advantage, returnn, log_prob`` (+ ``memory, mask``).
        """
        T = self.num_frames_per_proc
        rollout_start_memory = self.memory if self.recurrent else None
        # The observation after a rollout is preprocessed once, for its last value, and reused as the next
        # rollout's first input (preprocessing twice would also count it twice in running normalisers).
        if self.preprocessed_obs is None:
            self.preprocessed_obs = self._preprocess(self.obs)
        obs_steps = []
        for t in range(T):
            obs_steps.append(self.preprocessed_obs)
            env_action = self._act(t, self.preprocessed_obs)
            result = self.env.step(env_action)
            self.obs = result[0]
            self.preprocessed_obs = self._observe(t, env_action, result)

        with torch.no_grad():
            _, last_values, _ = self._model_step(
                self.preprocessed_obs, self.memory if self.recurrent else None, self.mask
            )
        rewards = self.rewards if self.reward_scaler is None else self.reward_scaler.scale(self.rewards)
        advantages, returns = compute_gae(
            rewards,
            self.values,
            last_values,
            self.terminateds,
            self.truncateds,
            self.final_values,
            self.discount,
            self.gae_lambda,
        )

        self.obs_steps = stack_steps(obs_steps)  # (T, N, ...), kept to recompute memories
        if not isinstance(self.obs_steps, (torch.Tensor, DictList)):
            raise TypeError("preprocess_obss must return a tensor or a DictList of tensors")
        exps = DictList(
            obs=flatten_steps(self.obs_steps),
            action=flatten_steps(self.actions),
            value=flatten_steps(self.values),
            reward=flatten_steps(rewards),
            advantage=flatten_steps(advantages),
            returnn=flatten_steps(returns),
            log_prob=flatten_steps(self.log_probs),
        )
        if self.recurrent:
            exps.memory = flatten_steps(self.memories)
            exps.mask = flatten_steps(self.masks)
            self.rollout_start_memory = rollout_start_memory
        self.collected_exps = exps  # what update_parameters(exps) accepts
        return exps, self._episode_logs()

    # One step of collection is split in two, before and after the envs step. (Measured: acting for one half
    # of the envs while the other half steps in its worker process was 17% slower on 2 cores with the
    # starter model, as two forward passes over half the envs cost more than the overlap won; so all envs
    # step together.)
    def _act(self, t, model_input):
        """Samples the actions of step ``t`` and records them; returns them as the envs take them."""
        with torch.no_grad():
            dist, value, memory = self._model_step(model_input, self.memory if self.recurrent else None, self.mask)
        action = self._sample(dist)
        if self.actions is None:
            self.actions = torch.zeros(
                (self.num_frames_per_proc, *action.shape), dtype=action.dtype, device=self.device
            )
        self.actions[t] = action
        self.values[t] = value
        self.log_probs[t] = _log_prob(dist, action)
        self.masks[t] = self.mask
        if self.recurrent:
            self.memories[t] = self.memory
            self.memory = memory
        return actions_for_env(action, self.action_space, self.tensor_env)

    def _observe(self, t, env_action, result):
        """Records what the envs did at step ``t``; returns their next observation as the model's input."""
        obs, reward, terminated, truncated, final_obs = result
        device = self.device
        terminated = torch.as_tensor(terminated, device=device, dtype=torch.bool)
        truncated = torch.as_tensor(truncated, device=device, dtype=torch.bool)
        reward = torch.as_tensor(reward, device=device, dtype=torch.float32)
        done = terminated | truncated
        self.terminateds[t] = terminated
        self.truncateds[t] = truncated
        if self.reshape_reward is not None:
            self.rewards[t] = self._reshaped_rewards(obs, env_action, reward, done)
        else:
            self.rewards[t] = reward
        self.final_values[t] = self._final_values(final_obs, terminated, truncated)
        if self.reward_scaler is not None:
            self.reward_scaler.observe(self.rewards[t], done)

        self.episode_return += reward
        self.episode_reshaped_return += self.rewards[t]
        self.episode_num_frames += 1
        self.step_stats[t, 0], self.step_stats[t, 1], self.step_stats[t, 2] = (
            self.episode_return,
            self.episode_reshaped_return,
            self.episode_num_frames,
        )
        self.mask = (~done).float()
        self.episode_return *= self.mask
        self.episode_reshaped_return *= self.mask
        self.episode_num_frames *= self.mask
        return self._preprocess(obs)

    def _preprocess(self, batch):
        """A batch of observations as the model's input (see ``preprocess_obss``)."""
        return self.preprocess_obss(batch if self.stacked_obs_input else unstack_obs(batch), device=self.device)

    @staticmethod
    def _sample(dist):
        try:
            return dist.sample()
        except (RuntimeError, ValueError) as error:  # torch's sampler is the first to meet a NaN policy
            raise FloatingPointError(
                f"the policy is not finite ({error}); check the observations for NaN/inf, or lower the learning rate"
            ) from error

    def _reshaped_rewards(self, obs, env_action, reward, done):
        rewards = reward.tolist()
        dones = done.tolist()
        return torch.tensor(
            [
                self.reshape_reward(index_obs(obs, i), env_action[i], rewards[i], dones[i])
                for i in range(self.num_procs)
            ],
            device=self.device,
            dtype=torch.float32,
        )

    def _final_values(self, final_obs, terminated, truncated):
        """V(final observation) where an episode was cut by a time limit (the bootstrap target), else 0."""
        cut = truncated & ~terminated
        values = torch.zeros(self.num_procs, device=self.device)
        if not bool(cut.any()):
            return values
        indices = cut.nonzero().flatten()
        final_batch = self._preprocess(self.env.final_obs_batch(final_obs, indices.tolist()))
        memory = self.memory[indices] if self.recurrent else None  # the memory after the step's action
        with torch.no_grad():
            _, final_value, _ = self._model_step(final_batch, memory, torch.ones(len(indices), device=self.device))
        values[indices] = final_value
        return values

    def _episode_logs(self):
        done = self.masks[1:] == 0  # mask[t+1] == 0 <=> the episode ended at step t
        done = torch.cat([done, (self.mask == 0).unsqueeze(0)])
        stats = self.step_stats.transpose(1, 2)[done].cpu()  # episodes in the order they ended
        finished = {
            "return": stats[:, 0].tolist(),
            "reshaped_return": stats[:, 1].tolist(),
            "num_frames": [int(n) for n in stats[:, 2].tolist()],
        }
        for key, values in finished.items():
            self.history[key].extend(values)
        self.num_episodes_ended += len(stats)
        # Like torch-ac: report at least the last N finished episodes, so that a rollout where few episodes
        # end still shows a meaningful mean; before N episodes have ended, zeros pad the lists to N entries.
        if len(finished["return"]) < self.num_procs:
            finished = {key: list(values) for key, values in self.history.items()}
        return {
            "return_per_episode": finished["return"],
            "reshaped_return_per_episode": finished["reshaped_return"],
            "num_frames_per_episode": finished["num_frames"],
            "num_padding_entries": max(0, self.num_procs - self.num_episodes_ended),  # leading zeros, not episodes
            "num_episodes": len(stats),
            "num_frames": self.num_frames,
        }

    # ----------------------------------------------------------------------------------------------- learning
    def update_parameters(self, exps=None):
        """Updates the model on ``exps``; returns a dict of logs.

        Given nothing, it first collects a rollout (``collect_experiences``) and the logs also hold that
        rollout's episode statistics. Given ``exps`` (torch-ac's ``exps, logs = algo.collect_experiences();
        algo.update_parameters(exps)``), they must be what this algorithm's last ``collect_experiences``
        returned, and the logs hold the update's statistics only.
        """
        if exps is None:
            exps, logs = self.collect_experiences()
        else:
            self._check_exps(exps)
            logs = {}
        return self.summarize(logs, self.optimize(exps), exps)

    def _check_exps(self, exps):
        if not isinstance(exps, DictList):
            raise ValueError(
                f"update_parameters(exps) needs the DictList that collect_experiences() returns, "
                f"got {type(exps).__name__}"
            )
        rows = len(exps)
        if rows != self.num_frames:
            raise ValueError(
                f"update_parameters(exps) got exps of {rows} rows, but this algorithm's rollouts have "
                f"{self.num_frames} (num_frames_per_proc {self.num_frames_per_proc} x {self.num_procs} envs)"
            )
        if exps is not self.collected_exps:
            raise ValueError(
                "update_parameters(exps) needs the exps of this algorithm's last collect_experiences() "
                "(these come from another algorithm or an older rollout)"
            )

    @abstractmethod
    def optimize(self, exps):
        """Gradient steps on a rollout's ``exps``; returns the statistics of each step (see optimize_batch)."""

    @abstractmethod
    def compute_loss(self, sb, dist, value):
        """Loss of one step of a mini-batch ``sb`` and a dict of detached statistics to log."""

    def recompute_memories(self):
        """Recomputes the rollout's memories with the current parameters (memories from older ones are stale)."""
        memory = self.rollout_start_memory
        with torch.no_grad():
            if self.sequence_model:
                _, _, outputs = self.acmodel.forward_sequence(
                    flatten_steps(self.obs_steps, transpose=False), memory, self.masks.reshape(-1)
                )
                outputs = outputs.view(self.num_frames_per_proc, self.num_procs, -1)
                return flatten_steps(torch.cat((memory.unsqueeze(0), outputs[:-1])))  # each step's memory input
            memories = []
            for t in range(self.num_frames_per_proc):
                memories.append(memory)
                _, _, memory = self.acmodel(self.obs_steps[t], memory * self.masks[t].unsqueeze(1))
        return flatten_steps(torch.stack(memories))

    def optimize_batch(self, exps, starts):
        """One gradient step on the sequences of ``recurrence`` steps starting at rows ``starts``."""
        if self.sequence_model:
            # All recurrence steps of all sequences in one call, rows time-major; the loss over all rows is the
            # mean of the per-step losses of the loop below.
            rows = (starts.unsqueeze(0) + torch.arange(self.recurrence, device=self.device).unsqueeze(1)).flatten()
            sb = exps[rows]
            dist, value, _ = self.acmodel.forward_sequence(sb.obs, exps.memory[starts], sb.mask)
            loss, stats = self.compute_loss(sb, dist, value)
            step_stats = [stats]
        else:
            memory = exps.memory[starts] if self.recurrent else None
            loss = 0.0
            step_stats = []
            for i in range(self.recurrence):
                sb = exps[starts + i]
                dist, value, memory = self._model_step(sb.obs, memory, sb.mask if self.recurrent else None)
                step_loss, stats = self.compute_loss(sb, dist, value)
                loss = loss + step_loss
                step_stats.append(stats)
            loss = loss / self.recurrence
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if distributed.is_distributed():
            distributed.average_gradients(self.acmodel.parameters())
        grad_norm = torch.nn.utils.clip_grad_norm_(self.acmodel.parameters(), self.max_grad_norm)
        if not torch.isfinite(grad_norm):
            raise FloatingPointError(
                f"the loss or its gradient is not finite (loss {loss.item():.4g}, "
                f"gradient norm {grad_norm.item():.4g}); "
                "parameters were not updated: lower the learning rate or check the rewards and observations"
            )
        self.optimizer.step()
        stats = {key: torch.stack([s[key] for s in step_stats]).mean() for key in step_stats[0]}
        stats["grad_norm"] = grad_norm.detach()
        return stats

    def sequence_starts(self):
        """Rows where a sequence of ``recurrence`` steps starts (never across the rollout's end)."""
        return torch.arange(0, self.num_frames, self.recurrence, device=self.device)

    def summarize(self, logs, batch_stats, exps):
        """Adds the means of the mini-batch statistics to ``logs``."""
        keys = batch_stats[0].keys()
        means = torch.stack([torch.stack([s[k] for s in batch_stats]).mean() for k in keys]).tolist()
        logs.update(zip(keys, means, strict=True))
        values, returns = exps.value, exps.returnn
        variance = returns.var()
        logs["explained_variance"] = float(1 - (returns - values).var() / variance) if variance > 0 else float("nan")
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        return logs

    def close(self):
        """Stops the env worker processes."""
        self.env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _sum_event_dims(x):
    return x.sum(dim=tuple(range(1, x.dim()))) if x.dim() > 1 else x


def _log_prob(dist, action):
    """log pi(a|s) per env: summed over action dimensions for a factorised (e.g. Normal) distribution."""
    return _sum_event_dims(dist.log_prob(action))


def _entropy(dist):
    return _sum_event_dims(dist.entropy())


def _divisor_below(n, k):
    return max(d for d in range(1, k + 1) if n % d == 0)
