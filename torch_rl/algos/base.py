"""What A2C and PPO share: acting in the envs, calling the model, and one optimisation step.

The rollout's storage, advantages and mini-batches are in torch_rl/rollout.py. Each algorithm file only says
how its loss is computed from a mini-batch and how it iterates over the data.
"""

import warnings
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import Categorical, Distribution

from torch_rl import distributed
from torch_rl.algos.checks import (
    check_acmodel,
    check_actions,
    check_callable,
    check_int,
    check_model_input,
    check_model_output,
    check_number,
    reshape_reward_error,
)
from torch_rl.algos.graph_step import GraphStep, clip_coefficient
from torch_rl.batching import flatten_steps, index_obs, stack_steps, unstack_obs
from torch_rl.compiled import CompiledFunction
from torch_rl.dictlist import DictList
from torch_rl.exploration import ExplorationBonus
from torch_rl.normalization import RewardScaler
from torch_rl.preprocess import default_preprocess_obss
from torch_rl.rollout import Rollout, sequence_rows
from torch_rl.vec_env import EnvBatch, actions_for_env, make_env_batch

PreprocessObss = Callable[..., torch.Tensor | DictList]  # f(obss, device=None)
ReshapeReward = Callable[[Any, Any, float, bool], float]  # f(obs, action, reward, done)
LR_SCHEDULES = ("constant", "linear")


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

    Keyword-only:
    exploration_bonus : a torch_rl.exploration.ExplorationBonus (default None: none). After each rollout,
        ``exploration_coef`` times its intrinsic reward for the observation each action led to is added to the
        rewards that GAE uses, and the bonus learns from those observations. The logs keep the env's returns
        (``return_per_episode``...) and show the intrinsic ones apart (``intrinsic_return_per_episode``,
        ``intrinsic_return_mean``, ``intrinsic_reward_mean``).
    exploration_coef : the intrinsic reward's weight.
    lr_schedule : "constant", or "linear": the learning rate falls linearly from ``lr`` to 0 at
        ``total_frames`` frames (a torch.optim.lr_scheduler.LambdaLR stepped after each update; state_dict()
        keeps its position, so a resumed run continues the schedule).
    total_frames : the frame budget a linear schedule anneals over (required for it).
    compile : run acting and the gradient step (on a CPU one graph: loss, gradient, clipping and optimizer
        step) as torch.compile graphs (torch_rl/compiled.py): faster where Python overhead sets the time (small
        models and batches), after a compile on first use (``compile_seconds``). Results match the eager path up
        to float rounding; sampling draws from the same generator.

    Every argument is checked where it is set, and the first step checks what ``preprocess_obss`` and the model
    return (torch_rl/algos/checks.py): a mistake is a TypeError or ValueError naming the argument. A2CAlgo and
    PPOAlgo also take the original torch-rl's positional order, without ``device`` (see
    ``checks.accepts_torch_rl_order``).

    Under torch.distributed (a process group of several ranks, e.g. started by torchrun), gradients are
    averaged over ranks before each optimizer step (see torch_rl.distributed): give each rank the same
    ``num_envs`` and hyper-parameters, its own env seeds, and the same initial parameters.
    """

    def __init__(
        self,
        envs: Sequence[gym.Env] | gym.vector.VectorEnv | EnvBatch,
        acmodel: nn.Module,
        device: str | torch.device | None,
        num_frames_per_proc: int,
        discount: float,
        lr: float,
        gae_lambda: float,
        entropy_coef: float,
        value_loss_coef: float,
        max_grad_norm: float,
        recurrence: int,
        preprocess_obss: PreprocessObss | None,
        reshape_reward: ReshapeReward | None,
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
        check_acmodel(acmodel)
        check_int("num_frames_per_proc", num_frames_per_proc, 1)
        check_number("discount", discount, 0, 1)
        check_number("lr", lr, 0, low_open=True)
        check_number("gae_lambda", gae_lambda, 0, 1)
        check_number("entropy_coef", entropy_coef, 0)
        check_number("value_loss_coef", value_loss_coef, 0)
        check_number("max_grad_norm", max_grad_norm, 0, low_open=True)
        check_int("recurrence", recurrence, 1)
        check_callable("preprocess_obss", preprocess_obss)
        check_callable("reshape_reward", reshape_reward)
        check_int("seed", seed, 0, allow_none=True)
        check_int("num_workers", num_workers, 0, allow_none=True)
        check_number("exploration_coef", exploration_coef, 0)
        check_int("total_frames", total_frames, 1, allow_none=True)
        if not isinstance(compile, bool):
            raise TypeError(f"compile must be a bool, got {type(compile).__name__}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
        if lr_schedule == "linear" and total_frames is None:
            raise ValueError("a linear lr_schedule needs total_frames (an int >= 1), got None")
        num_frames_per_proc, recurrence = int(num_frames_per_proc), int(recurrence)  # e.g. from numpy ints
        self.recurrent = bool(getattr(acmodel, "recurrent", False))
        self.recurrence = recurrence if self.recurrent else 1
        # A model that runs whole sequences at once (see RecurrentACModel.forward_sequence) trains faster.
        self.sequence_model = self.recurrent and callable(getattr(acmodel, "forward_sequence", None))
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
        self.reward_scaler = RewardScaler(self.num_procs, discount, self.device) if normalize_rewards else None
        self.lr_schedule = lr_schedule
        self.total_frames = total_frames
        self.lr_scheduler = None  # made by _schedule_lr once the subclass has made its optimizer
        self.exploration_bonus = exploration_bonus.to(self.device) if exploration_bonus is not None else None
        self.exploration_coef = exploration_coef
        self.intrinsic_returns = IntrinsicReturns(self.num_procs, self.device)

        memory_size = self.acmodel.memory_size if self.recurrent else None
        self.rollout = Rollout(num_frames_per_proc, self.num_procs, self.device, memory_size)
        self.collected_exps = None  # what update_parameters(exps) accepts
        # What acting carries from one step (and rollout) to the next.
        self.obs = self.env.reset(seed=seed)
        self.preprocessed_obs = None  # self.obs as the model's input, once computed
        self.mask = torch.ones(self.num_procs, device=self.device)  # 0 where an episode starts: memory zeroed
        self.memory = torch.zeros(self.num_procs, memory_size, device=self.device) if self.recurrent else None
        self.outputs_checked = False  # the first step checks what preprocess_obss and the model return
        self._policy_checks: list[torch.Tensor] = []  # the rollout's steps' checks of their policy (see _sample)
        self._no_final_values = torch.zeros(self.num_procs, device=self.device)  # read only (see _final_values)
        self.compile = compile
        self._compiled: dict[str, CompiledFunction] = {}  # made on first use
        self._one_graph: GraphStep | bool | None = None  # see _graph_step; None: not yet known
        self._dropped_compile_seconds = 0.0  # of graphs made again (see _graph_step), still part of compile_seconds

    def _fast(self, name: str, fn, options: dict | None = None):
        """``fn``, or with ``compile`` its compiled graph (made once, on first use, under ``name``; ``options``:
        Inductor's, for this graph)."""
        if not self.compile:
            return fn
        compiled = self._compiled.get(name)
        if compiled is None:
            compiled = CompiledFunction(fn, cuda_graphs=self.device.type == "cuda", options=options)
            self._compiled[name] = compiled
        return compiled

    @property
    def compile_seconds(self) -> float:
        """Seconds spent in the compiled functions' first calls, compile included (0 without ``compile``), and in
        the env's, for an env that compiles (a BatchedMiniGridEnv made with ``compile=True``)."""
        own = sum(f.seconds for f in self._compiled.values()) + self._dropped_compile_seconds
        return own + self.env.compile_seconds

    @property
    def masks(self) -> torch.Tensor:
        """(T, N) masks of the last rollout (see Rollout)."""
        return self.rollout.masks

    @property
    def rollout_start_memory(self) -> torch.Tensor | None:
        """The memory before the last rollout's first step."""
        return self.rollout.start_memory

    # -------------------------------------------------------------------------------------------- the model
    def _run_model(self, obs, memory=None, mask=None, num_steps=1):
        """Every call of the model goes through here: ``num_steps`` consecutive steps of B sequences, with rows
        time-major (row t*B + i is sequence i at step t), ``memory`` (B, memory_size) before the first step and
        ``mask`` zeroing it where an episode starts. Yields ``(rows, dist, value, memory after)`` per call of
        the model: all rows at once for a feedforward model, or with ``forward_sequence``; else step by step."""
        if not self.recurrent:
            dist, value = self.acmodel(obs)
            yield slice(None), dist, value, None
        elif self.sequence_model and num_steps > 1:
            dist, value, memories = self.acmodel.forward_sequence(obs, memory, mask)
            yield slice(None), dist, value, memories
        else:
            size = len(memory)
            for t in range(num_steps):
                rows = slice(t * size, (t + 1) * size)
                step_obs = obs if num_steps == 1 else obs[rows]
                dist, value, memory = self.acmodel(step_obs, memory * mask[rows].unsqueeze(1))
                yield rows, dist, value, memory

    def _model_step(self, obs, memory=None, mask=None):
        ((_, dist, value, memory),) = self._run_model(obs, memory, mask)
        return dist, value, memory

    # ----------------------------------------------------------------------------------------------- collection
    def collect_experiences(self) -> tuple[DictList, dict]:
        """Runs every env for ``num_frames_per_proc`` steps; returns (exps, logs).

        ``exps`` is a DictList of N*T rows ordered env by env (rows i*T .. i*T+T-1 are env i's steps in time
        order) with ``obs, action, value, reward, advantage, returnn, log_prob`` (+ ``memory, mask``).
        """
        # The observation after a rollout is preprocessed once, for its last value, and reused as the next
        # rollout's first input (preprocessing twice would also count it twice in running normalisers).
        if self.preprocessed_obs is None:
            self.preprocessed_obs = self._preprocess(self.obs)
        self._policy_checks = []
        for t in range(self.num_frames_per_proc):
            self._step(t)
        if self._policy_checks and not bool(torch.stack(self._policy_checks).all()):  # one look per rollout
            raise FloatingPointError(
                "the policy is not finite (its probabilities hold NaN or negative values); check the observations "
                "for NaN/inf, or lower the learning rate"
            )
        with torch.no_grad():
            _, last_values, _ = self._model_step(self.preprocessed_obs, self.memory, self.mask)
        rollout = self.rollout
        rewards = rollout.rewards if self.reward_scaler is None else self.reward_scaler.scale(rollout.rewards)
        bonus_logs = {}
        if self.exploration_bonus is not None:
            rewards, bonus_logs = self._add_intrinsic_rewards(rewards)
        advantages, returns = rollout.advantages(last_values, self.discount, self.gae_lambda, rewards)
        exps = rollout.flatten(rewards, advantages, returns)
        self.collected_exps = exps
        return exps, rollout.episode_logs() | bonus_logs

    def _add_intrinsic_rewards(self, rewards):
        """``rewards`` + coef * the bonus of each step's next observation (the rollout's inputs shifted by one,
        then the observation after the rollout); the bonus then learns from them. Returns (rewards, logs)."""
        rollout = self.rollout
        next_obs = stack_steps(rollout.obs[1:] + [self.preprocessed_obs])
        next_obs = flatten_steps(next_obs, transpose=False)  # time-major rows: t*N + i
        done = rollout.terminateds | rollout.truncateds
        intrinsic = self.exploration_bonus.intrinsic_rewards(next_obs, done).reshape(rewards.shape).to(rewards.dtype)
        logs = self.exploration_bonus.update(next_obs)
        logs |= self.intrinsic_returns.logs(intrinsic, done)
        return rewards + self.exploration_coef * intrinsic, logs

    # (Measured: acting for one half of the envs while the other half steps in its worker process was 17% slower
    # on 2 cores with the starter model, as two forward passes over half the envs cost more than the overlap
    # won; so all envs step together.)
    def _step(self, t):
        """Acts in every env, steps them and stores step ``t`` in the rollout."""
        model_input = self.preprocessed_obs
        # inference mode: the acting ops skip autograd's bookkeeping (3% of training FPS at 16 envs with a small MLP);
        # what it makes is copied into the rollout, never saved for backward (recompute_memories reruns the model)
        with torch.inference_mode():
            if self.outputs_checked:
                action, log_prob, value, next_memory, valid = self._act_fast(model_input, self.memory, self.mask)
            else:
                dist, value, next_memory = self._first_model_step(model_input)
                action, valid = self._sample(dist)
                log_prob = _log_prob(dist, action)
                check_actions(action, log_prob, self.num_procs)
                self.outputs_checked = True
        if valid is not None:
            self._policy_checks.append(valid)
        env_action = actions_for_env(action, self.action_space, self.env.accepts_torch_actions)
        obs, reward, terminated, truncated, final_obs = self.env.step(env_action)
        device = self.device
        terminated = torch.as_tensor(terminated, device=device, dtype=torch.bool)
        truncated = torch.as_tensor(truncated, device=device, dtype=torch.bool)
        reward = torch.as_tensor(reward, device=device, dtype=torch.float32)
        done = terminated | truncated
        reshaped = reward if self.reshape_reward is None else self._reshaped_rewards(obs, env_action, reward, done)
        self.rollout.add_step(
            t,
            obs=model_input,
            action=action,
            value=value,
            log_prob=log_prob,
            mask=self.mask,
            memory=self.memory,
            reward=reward,
            reshaped_reward=reshaped,
            terminated=terminated,
            truncated=truncated,
            final_value=self._final_values(final_obs, terminated, truncated, next_memory),
        )
        if self.reward_scaler is not None:
            self.reward_scaler.observe(reshaped, done)
        self.obs = obs
        self.memory = next_memory
        self.mask = (~done).float()
        self.preprocessed_obs = self._preprocess(obs)

    def _act(self, obs, memory, mask):
        """The policy's step for every env: (action, log_prob, value, memory after, valid: see _sample)."""
        dist, value, memory = self._model_step(obs, memory, mask)
        action, valid = self._sample(dist)
        return action, _log_prob(dist, action), value, memory, valid

    def _act_fast(self, obs, memory, mask):
        """``_act``, compiled with ``compile``. An error in the compiled graph is met again eagerly, so that it
        reads as the eager path's (e.g. a policy that is not finite)."""
        if not self.compile:
            return self._act(obs, memory, mask)
        try:
            return self._fast("act", self._act, self._act_options())(obs, memory, mask)
        except (RuntimeError, ValueError):
            return self._act(obs, memory, mask)

    def _act_options(self) -> dict:
        """Inductor's options for the acting graph. fallback_random: the sampling noise drawn by torch's generator
        as on the eager path (the same actions), not by Inductor's own. cpp_wrapper, on a CPU: the graph's calls
        made from C++ rather than Python, which at one small step per call is a visible share (a step of 16 envs
        of the sweep's MLP acted in 91 us against 113, for about 3 s more of a cold compile)."""
        return {"fallback_random": True} | ({"cpp_wrapper": True} if self.device.type == "cpu" else {})

    def _first_model_step(self, obs):
        """``_model_step`` at the first step of the first rollout, checking what ``preprocess_obss`` and the
        model return, so that a mistake is named in the caller's words rather than met deep in torch later (the
        steps after it skip the checks)."""
        check_model_input(obs, self.num_procs)
        memory = self.memory * self.mask.unsqueeze(1) if self.recurrent else None
        output = self.acmodel(obs, memory) if self.recurrent else self.acmodel(obs)
        memory_size = self.acmodel.memory_size if self.recurrent else None
        return check_model_output(output, self.recurrent, self.num_procs, memory_size)

    def _preprocess(self, batch):
        """A batch of observations as the model's input (see ``preprocess_obss``)."""
        return self.preprocess_obss(batch if self.stacked_obs_input else unstack_obs(batch), device=self.device)

    @staticmethod
    def _sample(dist):
        """(a sampled action per env, valid): for a Categorical, valid is a 0-d tensor, False where the
        probabilities hold NaN or negative values (``collect_experiences`` looks once per rollout); else None.

        A Categorical is sampled as ``torch.multinomial`` samples one draw, the argmax of the probabilities over
        exponential noise (the same generator, the same actions), without its checks of the probabilities:
        at small batches they cost more than the draw, and the caller's single look replaces them."""
        if type(dist) is Categorical:
            probs = dist.probs
            action = (probs / torch.empty_like(probs).exponential_()).argmax(-1)
            return action, probs.amin() >= 0  # amin is NaN where a probability is
        try:
            return dist.sample(), None
        except (RuntimeError, ValueError) as error:  # torch's sampler is the first to meet a NaN policy
            raise FloatingPointError(
                f"the policy is not finite ({error}); check the observations for NaN/inf, or lower the learning rate"
            ) from error

    def _reshaped_rewards(self, obs, env_action, reward, done):
        rewards = reward.tolist()
        dones = done.tolist()
        values = [
            self.reshape_reward(index_obs(obs, i), env_action[i], rewards[i], dones[i]) for i in range(self.num_procs)
        ]
        # Checked at every step, not only the first: a reward function may go wrong on a rare event, and these
        # checks cost nothing beside the per-env Python calls above.
        try:
            reshaped = torch.tensor(values, device=self.device, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise reshape_reward_error(values) from None
        if reshaped.shape != reward.shape:
            raise reshape_reward_error(values)
        return reshaped

    def _final_values(self, final_obs, terminated, truncated, memory):
        """V(final observation) where an episode was cut by a time limit (the bootstrap target), else 0;
        ``memory``: the memory after the step's action."""
        if not self.env.has_final_obs(final_obs):
            return self._no_final_values
        cut = truncated & ~terminated
        values = torch.zeros(self.num_procs, device=self.device)
        if not bool(cut.any()):
            return values
        indices = cut.nonzero().flatten()
        final_batch = self._preprocess(self.env.final_obs_batch(final_obs, indices.tolist()))
        memory = memory[indices] if memory is not None else None
        with torch.no_grad():
            _, final_value, _ = self._model_step(final_batch, memory, torch.ones(len(indices), device=self.device))
        values[indices] = final_value
        return values

    # ----------------------------------------------------------------------------------------------- learning
    def update_parameters(self, exps: DictList | None = None) -> dict:
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
    def optimize(self, exps: DictList) -> list[dict]:
        """Gradient steps on a rollout's ``exps``; returns the statistics of each step (see optimize_batch)."""

    @abstractmethod
    def compute_loss(self, sb: DictList, dist: Distribution, value: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Loss of one step of a mini-batch ``sb`` and a dict of detached statistics to log."""

    def recompute_memories(self) -> torch.Tensor:
        """The last rollout's memories recomputed with the current parameters (memories from older ones are
        stale), as ``exps.memory``."""
        rollout = self.rollout
        memory = rollout.start_memory
        memories = [memory]
        with torch.no_grad():
            for _, _, _, outputs in self._run_model(
                rollout.time_major_obs(), memory, rollout.masks.reshape(-1), self.num_frames_per_proc
            ):
                memories.append(outputs)
        # each step's memory input: the start memory, then every step's output but the last
        memories = torch.cat(memories).view(self.num_frames_per_proc + 1, self.num_procs, -1)[:-1]
        return flatten_steps(memories)

    def optimize_batch(self, exps: DictList, starts: torch.Tensor) -> dict:
        """One gradient step on the sequences of ``recurrence`` steps starting at rows ``starts``."""
        graph_step = self._graph_step()
        if graph_step is not None:
            stats = self._optimize_batch_in_one_graph(graph_step, exps, starts)
            if stats is not None:
                return stats
        # With compile, the parts are compiled where the one graph is not used; the step before it is eager.
        fast = self._fast if self._one_graph is False else _eager
        loss, stats = fast("batch_loss", self.batch_loss)(exps, starts)
        _forget_gradients(self.optimizer)
        loss.backward()
        if distributed.is_distributed():
            distributed.average_gradients(self.acmodel.parameters())
        grad_norm = fast("clip_gradients", self._clip_gradients)()
        _check_finite(loss, grad_norm)
        # A compiled optimizer step is specialised on the learning rate: under a schedule that changes it at every
        # update the step stays eager, rather than compiling again each time.
        if self.lr_scheduler is None:
            fast("optimizer_step", self.optimizer.step)()
        else:
            self.optimizer.step()
        stats["grad_norm"] = grad_norm.detach()
        return stats

    def _graph_step(self) -> GraphStep | None:
        """With ``compile`` on a CPU, the gradient step as one graph (torch_rl/algos/graph_step.py), once it can
        be: from the optimizer's second step (the first, eager, makes its state); else None."""
        graph = self._one_graph
        if isinstance(graph, GraphStep) and (
            graph.optimizer is not self.optimizer or graph.max_grad_norm != self.max_grad_norm
        ):  # the caller replaced the optimizer or changed the clipping: the graph is made again
            self._one_graph = None
            dropped = self._compiled.pop("gradient_step", None)
            self._dropped_compile_seconds += dropped.seconds if dropped is not None else 0.0
        if self._one_graph is None:
            one_graph = self.compile and self.device.type == "cpu" and not distributed.is_distributed()
            if not one_graph:
                self._one_graph = False
            elif GraphStep.usable(self.acmodel, self.optimizer, constant_lr=self.lr_scheduler is None):
                self._one_graph = GraphStep(self.acmodel, self.optimizer, self.batch_loss, self.max_grad_norm)
            elif self.optimizer.state:  # stepped already, but not a step this graph can take
                self._one_graph = False
        return self._one_graph or None

    def _optimize_batch_in_one_graph(self, graph_step: GraphStep, exps: DictList, starts: torch.Tensor):
        """``optimize_batch`` by ``graph_step``; None where it could not be compiled (the caller then compiles the
        loss, the clipping and the optimizer's step apart, and the reason is shown once)."""
        compiled = self._fast("gradient_step", graph_step.step)
        try:
            loss, grad_norm, stats = compiled(exps, starts, graph_step.states())
        except RuntimeError as error:  # torch.compile's errors; the first call compiles, and nothing ran
            if compiled.called:
                raise
            self._one_graph = False
            del self._compiled["gradient_step"]
            warnings.warn(
                f"compile: the gradient step could not be compiled as one graph ({str(error).splitlines()[0]}); "
                "its parts are compiled apart",
                stacklevel=3,
            )
            return None
        _check_finite(loss, grad_norm)
        stats["grad_norm"] = grad_norm
        return stats

    def batch_loss(self, exps: DictList, starts: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """The loss of the sequences of ``recurrence`` steps starting at rows ``starts``, and the means of its
        statistics: the mean of the per-step losses (one loss over all rows, when the model computes all steps in
        one call, is the same mean)."""
        sb = exps[sequence_rows(starts, self.recurrence)]
        memory = exps.memory[starts] if self.recurrent else None
        mask = sb.mask if self.recurrent else None
        step_losses, step_stats = [], []
        for rows, dist, value, _ in self._run_model(sb.obs, memory, mask, self.recurrence):
            loss, stats = self.compute_loss(sb[rows], dist, value)
            step_losses.append(loss)
            step_stats.append(stats)
        if len(step_losses) == 1:  # a model call over all rows: its loss and statistics are the means already
            return step_losses[0], step_stats[0]
        loss = sum(step_losses[1:], step_losses[0]) / len(step_losses)
        stats = {key: torch.stack([s[key] for s in step_stats]).mean() for key in step_stats[0]}
        return loss, stats

    def _clip_gradients(self) -> torch.Tensor:
        """Clips the gradients' global norm to ``max_grad_norm``; returns the norm before clipping.

        The ops of ``clip_grad_norm_``'s foreach path, called directly: its grouping of the gradients by device and
        dtype, and its decorators, cost 60-160 us a mini-batch of the starter model in the loop (a third to a half
        of what clipping took), for one group here. Sparse or mixed gradients take ``clip_grad_norm_`` itself."""
        parameters = list(self.acmodel.parameters())
        grads = [p.grad for p in parameters if p.grad is not None]
        kind = (grads[0].device, grads[0].dtype) if grads else None
        if kind is None or any(g.is_sparse or (g.device, g.dtype) != kind for g in grads):
            return torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm)
        norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, clip_coefficient(self.max_grad_norm, norm))
        return norm

    def sequence_starts(self) -> torch.Tensor:
        """Rows where a sequence of ``recurrence`` steps starts (never across the rollout's end)."""
        return self.rollout.sequence_starts(self.recurrence)

    def _schedule_lr(self) -> None:
        """Makes the learning-rate schedule over ``self.optimizer``; subclasses call it once they made it."""
        if self.lr_schedule == "linear":
            frames_per_update, total_frames = self.num_frames, self.total_frames

            def remaining_fraction(updates_done):
                return max(0.0, 1.0 - updates_done * frames_per_update / total_frames)

            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, remaining_fraction)

    def set_lr(self, lr: float, updates_done: int | None = None) -> None:
        """Sets the learning rate: with a schedule, its starting rate, the current one following from the schedule's
        position (``updates_done``, if given: for a schedule resumed without a saved position)."""
        if self.lr_scheduler is None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            return
        scheduler = self.lr_scheduler
        if updates_done is not None:
            scheduler.last_epoch = updates_done
        scheduler.base_lrs = [lr] * len(self.optimizer.param_groups)
        for group, schedule in zip(self.optimizer.param_groups, scheduler.lr_lambdas, strict=True):
            group["lr"] = lr * schedule(scheduler.last_epoch)

    def summarize(self, logs: dict, batch_stats: list[dict], exps: DictList) -> dict:
        """Adds the means of the mini-batch statistics to ``logs``, and steps the learning-rate schedule (the
        logged ``lr`` is the one this update used)."""
        keys = batch_stats[0].keys()
        means = torch.stack([torch.stack([s[k] for s in batch_stats]).mean() for k in keys]).tolist()
        logs.update(zip(keys, means, strict=True))
        values, returns = exps.value, exps.returnn
        variance = returns.var()
        logs["explained_variance"] = float(1 - (returns - values).var() / variance) if variance > 0 else float("nan")
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        if self.lr_scheduler is not None:
            self.lr_scheduler.step()
        return logs

    def close(self) -> None:
        """Stops the env worker processes."""
        self.env.close()

    def __enter__(self) -> "BaseAlgo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def state_dict(self) -> dict:
        """What the algorithm owns and a checkpoint keeps (plain tensors and numbers): the optimizer's state and,
        where they are used, the reward scaler's statistics, the learning-rate schedule's position and the
        exploration bonus's model, optimizer and statistics."""
        state = {"optimizer": self.optimizer.state_dict()}
        if self.reward_scaler is not None:
            state["reward_scaler"] = self.reward_scaler.stats.state_dict()
        if self.lr_scheduler is not None:
            state["lr_scheduler"] = self.lr_scheduler.state_dict()
        if self.exploration_bonus is not None:
            state["exploration_bonus"] = _to_cpu(self.exploration_bonus.state_dict())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restores ``state_dict()``'s parts that ``state`` holds (a missing part keeps its fresh value)."""
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        saved = state.get("reward_scaler")
        if self.reward_scaler is not None and saved is not None:
            if saved["mean"].shape != self.reward_scaler.stats.mean.shape:
                raise ValueError(f"the reward scaler's statistics have shape {tuple(saved['mean'].shape)}, not ()")
            self.reward_scaler.stats.load_state_dict(saved)
        if self.lr_scheduler is not None and state.get("lr_scheduler") is not None:
            self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        if self.exploration_bonus is not None and state.get("exploration_bonus") is not None:
            self.exploration_bonus.load_state_dict(state["exploration_bonus"])
            self.exploration_bonus.to(self.device)


class IntrinsicReturns:
    """The intrinsic reward summed over each episode, for the logs (the last N episodes, zeros before N ended,
    as the env's returns in torch_rl.rollout.EpisodeStatistics)."""

    def __init__(self, num_envs: int, device: torch.device):
        self.running = torch.zeros(num_envs, device=device)
        self.history = deque([0.0] * num_envs, maxlen=num_envs)

    def logs(self, intrinsic: torch.Tensor, done: torch.Tensor) -> dict:
        """The logs of a rollout's (T, N) intrinsic rewards, with ``done`` (T, N) where episodes ended."""
        at_step = torch.empty_like(intrinsic)
        for t in range(len(intrinsic)):
            self.running += intrinsic[t]
            at_step[t] = self.running
            self.running *= (~done[t]).to(self.running.dtype)
        ended = at_step[done].tolist()  # in the order the episodes ended, as return_per_episode
        self.history.extend(ended)
        per_episode = ended if len(ended) >= len(self.running) else list(self.history)
        return {
            "intrinsic_return_per_episode": per_episode,
            "intrinsic_return_mean": sum(per_episode) / len(per_episode),
            "intrinsic_reward_mean": intrinsic.mean().item(),
        }


def _to_cpu(state):
    """A (nested) state dict with its tensors on the CPU, as checkpoints keep them."""
    if isinstance(state, dict):
        return {key: _to_cpu(value) for key, value in state.items()}
    return state.cpu() if isinstance(state, torch.Tensor) else state


def _eager(name, fn):
    return fn


def _forget_gradients(optimizer):
    """``optimizer.zero_grad(set_to_none=True)``, as its own loop: torch's wraps the same loop in a profiler record
    and a Dynamo guard, about 50 us a mini-batch in the loop against 5 (an optimizer with its own zero_grad keeps
    it)."""
    if type(optimizer).zero_grad is not torch.optim.Optimizer.zero_grad:
        optimizer.zero_grad(set_to_none=True)
        return
    for group in optimizer.param_groups:
        for parameter in group["params"]:
            parameter.grad = None


def _check_finite(loss, grad_norm):
    if not torch.isfinite(grad_norm):
        raise FloatingPointError(
            f"the loss or its gradient is not finite (loss {loss.item():.4g}, "
            f"gradient norm {grad_norm.item():.4g}); "
            "parameters were not updated: lower the learning rate or check the rewards and observations"
        )


def _sum_event_dims(x):
    return x.sum(dim=tuple(range(1, x.dim()))) if x.dim() > 1 else x


def _log_prob(dist, action):
    """log pi(a|s) per env: summed over action dimensions for a factorised (e.g. Normal) distribution."""
    return _sum_event_dims(dist.log_prob(action))


def _entropy(dist):
    return _sum_event_dims(dist.entropy())


def _divisor_below(n, k):
    return max(d for d in range(1, k + 1) if n % d == 0)
