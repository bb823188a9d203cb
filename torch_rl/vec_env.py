"""Stepping many environments at once, behind one small interface the algorithms use.

``EnvBatch`` is that interface: ``reset(seed) -> obs`` and ``step(actions) -> (obs, reward, terminated,
truncated, final_obs)``, where an env whose episode ended is reset in the same step (its new episode's first
observation is in ``obs``) and ``final_obs`` maps the index of each env that ended to its last observation.

Two implementations:
- ``ParallelEnv`` steps a list of Gymnasium envs, several envs per worker process; workers return array
  observations through shared memory (torch_rl.shared_obs) and the rest through their pipe.
  Why not ``gymnasium.vector.AsyncVectorEnv``: it runs one process per env, and on a few cores a pipe
  round-trip costs more than a MiniGrid step (measured: AsyncVectorEnv(16) 11.0k steps/s vs one plain env
  15.2k on 2 cores); its shared memory also fails on MiniGrid's MissionSpace (a text entry).
- ``VectorEnvBatch`` adapts any ``gymnasium.vector.VectorEnv`` whose autoreset mode is SAME_STEP, including
  envs that step torch tensors on the device (they keep everything there).
"""

import itertools
import multiprocessing as mp
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing import connection as mp_connection
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from torch_rl.batching import concat_obs, index_obs, stack_obs
from torch_rl.shared_obs import SharedObservations


class EnvWorkerError(RuntimeError):
    """An environment raised, or a worker process died, while stepping."""


class EnvBatch:
    num_envs: int
    single_action_space: gym.Space
    single_observation_space: gym.Space
    # True where the envs take the sampled actions as torch tensors (on the device), not as numpy arrays.
    accepts_torch_actions: bool = False

    @property
    def compile_seconds(self) -> float:
        """Seconds the envs spent compiling (torch.compile), for the logs; 0 for envs that do not compile."""
        return 0.0

    def reset(self, seed: int | None = None) -> Any:
        raise NotImplementedError

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, Any]:
        raise NotImplementedError

    def final_obs_batch(self, final_obs: Any, indices: list[int]) -> Any:
        """The final observations of envs ``indices`` as one batch."""
        return stack_obs([final_obs[i] for i in indices])

    def has_final_obs(self, final_obs: Any) -> bool:
        """False where ``final_obs`` (what ``step`` returned) says that no episode ended in the step: a test in
        Python, so that the steps where none ended cost no look at the flags (a host sync on a GPU)."""
        return bool(final_obs)

    def close(self) -> None:
        pass


class _EnvGroup:
    """A few envs stepped one after another in one process, with same-step autoreset."""

    def __init__(self, envs, first_index):
        self.envs = envs
        self.first_index = first_index
        self.steps = [0] * len(envs)  # steps taken by each env, to name the one a hang happened in
        self.busy = None  # (env index in the group, method name, start time) while an env call runs

    def reset(self, seeds):
        return stack_obs(
            [self._call(i, env.reset, seed=seed)[0] for i, (env, seed) in enumerate(zip(self.envs, seeds, strict=True))]
        )

    def step(self, actions):
        observations, rewards, terminateds, truncateds, final_obs = [], [], [], [], {}
        for i, (env, action) in enumerate(zip(self.envs, actions, strict=True)):
            self.steps[i] += 1
            obs, reward, terminated, truncated, _ = self._call(i, env.step, action)
            if terminated or truncated:
                final_obs[self.first_index + i] = obs
                obs, _ = self._call(i, env.reset)
            observations.append(obs)
            rewards.append(reward)
            terminateds.append(terminated)
            truncateds.append(truncated)
        return (
            stack_obs(observations),
            np.asarray(rewards, dtype=np.float32),
            np.asarray(terminateds, dtype=bool),
            np.asarray(truncateds, dtype=bool),
            final_obs,
        )

    def _call(self, i, method, *args, **kwargs):
        self.busy = (i, method.__name__, time.monotonic())
        try:
            return method(*args, **kwargs)
        except Exception as error:
            raise EnvWorkerError(
                f"env {self.first_index + i} ({self._name(i)}) raised in {method.__name__}: "
                f"{type(error).__name__}: {error}"
            ) from error
        finally:
            self.busy = None

    def _name(self, i):
        env = self.envs[i]
        return env.spec.id if getattr(env, "spec", None) is not None else type(env).__name__

    def describe_hang(self, busy, timeout):
        i, method, _ = busy
        return (
            f"env {self.first_index + i} ({self._name(i)}) did not return from {method} within {timeout:g} s "
            f"(at its step {self.steps[i]})"
        )


class _HangWatchdog(threading.Thread):
    """Watches the env calls of one _EnvGroup; when one runs longer than ``timeout`` seconds it calls
    ``report(message)`` once, then ends the process with exit code 1.

    Why a thread that ends the process, and not an exception or moving the envs to a worker: a stuck env call
    cannot be interrupted from Python (an exception only lands when the call returns to Python bytecode, and not
    at all inside C code or a blocking call), and its env is in an unknown state afterwards; stepping in-process
    envs in a worker instead would slow every step (the reason in-process is the default on few cores). Ending
    the process leaves the last checkpoint as it was, as saves are atomic. The thread needs the GIL to run: an env
    stuck in C code that holds the GIL is only caught with worker processes (the main process's timeout).
    """

    def __init__(self, group, timeout, report):
        super().__init__(name="torch_rl env watchdog", daemon=True)
        self.group, self.timeout, self.report = group, timeout, report
        self.stopped = threading.Event()

    def run(self):
        interval = min(1.0, self.timeout / 4)
        last, watched, stopped_for = time.monotonic(), None, 0.0
        while not self.stopped.wait(interval):
            now, busy = time.monotonic(), self.group.busy
            if busy is not watched:
                watched, stopped_for = busy, 0.0
            if now - last > interval + 2.0:  # the whole process was stopped (Ctrl-Z, SIGSTOP): not the env's time
                stopped_for += now - last - interval
            last = now
            if busy is not None and now - busy[2] - stopped_for > self.timeout:
                try:
                    self.report(self.group.describe_hang(busy, self.timeout))
                finally:
                    os._exit(1)

    def stop(self):
        self.stopped.set()


def report_to_stderr(message):
    """The default report of a hung env: one line ``error: ...`` on stderr (written directly: the stuck thread
    may hold sys.stderr's lock)."""
    try:
        sys.stdout.flush()
    except Exception:
        pass
    os.write(2, f"error: {' '.join(message.split())}\n".encode(errors="replace"))


def _pack(command, result, shared, start):
    """A worker's reply, made cheap to pickle: observations through shared memory (``ParallelEnv._join_obs``
    reads them back), numbers as lists."""
    if shared is None:
        return result
    if command == "reset":
        return shared.put(result, start)
    obs, rewards, terminateds, truncateds, final_obs = result
    return shared.put(obs, start), rewards.tolist(), terminateds.tolist(), truncateds.tolist(), final_obs


def _worker(conn, group, inherited_conns=(), shared=None, timeout=None, worker_index=0):
    # Ctrl-C reaches the whole process group: the main process handles it (it saves, then closes the workers).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM ends a worker at once, even one stuck in C code (close() sends it), whatever handler the main
    # process had when it forked this one.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # A forked worker inherits the main process's ends of the pipes; closing them makes conn.recv() see EOF
    # when the main process dies (even by SIGKILL), so that a worker never outlives it.
    for inherited in inherited_conns:
        inherited.close()
    send_lock = threading.Lock()  # the watchdog's report and a reply must not interleave on the pipe
    if timeout is not None:

        def report(message):
            envs = f"{group.first_index}..{group.first_index + len(group.envs) - 1}"
            with send_lock:
                conn.send(("error", (f"env worker {worker_index} (envs {envs}) did not answer: {message}", "")))

        _HangWatchdog(group, timeout, report).start()
    try:
        while True:
            command, data = pickle.loads(conn.recv_bytes())
            if command == "close":
                break
            try:
                result = getattr(group, command)(data)
            except Exception as error:
                if not isinstance(error, EnvWorkerError):
                    error = EnvWorkerError(
                        f"envs {group.first_index}..{group.first_index + len(group.envs) - 1} "
                        f"failed in {command}: {type(error).__name__}: {error}"
                    )
                with send_lock:
                    conn.send(("error", (str(error), traceback.format_exc())))
                break
            reply = pickle.dumps(("ok", _pack(command, result, shared, group.first_index)), pickle.HIGHEST_PROTOCOL)
            with send_lock:
                conn.send_bytes(reply)
    except (EOFError, KeyboardInterrupt, BrokenPipeError, ConnectionResetError):
        pass
    finally:
        for env in group.envs:
            try:
                env.close()
            except Exception:
                pass
        conn.close()


def default_num_workers(num_envs: int) -> int:
    """0 (step in this process) on up to 2 cores, else one worker per core but the learner's.

    Measured on 2 cores, DoorKey-5x5 PPO with 16 envs: in-process 4.8k FPS, 1 worker 4.1k, 2 workers 3.9k: with
    the learner needing a core too, a pipe round-trip per step costs more than it saves. On 16 cores, 16 envs:
    15 workers 6.1k/5.9k FPS against 5.9k/5.2k with 16 (two rounds), so the learner keeps its core.
    """
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(num_envs, cores - 1)


WORKER_TIMEOUT_GRACE = 2.0  # seconds the main process waits beyond ``timeout`` for a worker's own report


class ParallelEnv(EnvBatch):
    """Steps ``envs`` (a list of Gymnasium envs) in ``num_workers`` processes, ``len(envs)/num_workers`` each.

    ``num_workers=0`` steps them all in this process (best on one or two cores, and for debugging). The default
    is ``default_num_workers``. Envs are handed to workers by ``fork`` where available, so they need not pickle.

    ``timeout``: seconds one env's ``step`` or ``reset`` may take (None: no limit). In a worker, a longer call
    raises EnvWorkerError naming the env and the step, and the worker is stopped. In this process, a longer call
    cannot be interrupted, so the only way out is ending the process: that happens only when the caller asks for
    it by passing ``on_timeout``, which a watchdog thread calls with the message before the process exits with
    code 1 (scripts.train does, for ``--env-timeout``). Without ``on_timeout``, envs stepped in this process have
    no time limit: a library must not end its caller's process on its own.
    """

    def __init__(
        self,
        envs: Sequence[gym.Env],
        num_workers: int | None = None,
        timeout: float | None = 600.0,
        on_timeout: Callable[[str], None] | None = None,
    ):
        if len(envs) == 0:
            raise ValueError("envs is empty: pass at least one Gymnasium environment")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None (no limit), got {timeout}")
        self.num_envs = len(envs)
        self.single_action_space = envs[0].action_space
        self.single_observation_space = envs[0].observation_space
        self.timeout = timeout
        if num_workers is None:
            num_workers = default_num_workers(self.num_envs)
        if num_workers < 0:
            raise ValueError(f"num_workers must be at least 0 (0: step the envs in this process), got {num_workers}")
        num_workers = min(num_workers, self.num_envs)
        bounds = np.linspace(0, self.num_envs, num_workers + 1).astype(int) if num_workers else [0, self.num_envs]
        self.groups = [_EnvGroup(envs[a:b], a) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        self.local = num_workers == 0
        self.conns, self.processes = [], []
        self.shared = None
        if not self.local:
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            context = mp.get_context(method)
            if method == "fork":  # the shared buffers are inherited by forking
                self.shared = SharedObservations(self.single_observation_space, self.num_envs)
            for group in self.groups:
                parent, child = context.Pipe()
                inherited = [*self.conns, parent] if method == "fork" else []
                process = context.Process(
                    target=_worker,
                    args=(child, group, inherited, self.shared, timeout, len(self.processes)),
                    daemon=True,
                )
                process.start()
                child.close()
                self.conns.append(parent)
                self.processes.append(process)
        self._poller = select.poll() if hasattr(select, "poll") and not self.local else None
        self._fd_worker = {}
        if self._poller is not None:
            for w, conn in enumerate(self.conns):
                self._poller.register(conn.fileno(), select.POLLIN)
                self._fd_worker[conn.fileno()] = w
        self.watchdog = None
        if self.local and timeout is not None and on_timeout is not None:
            self.watchdog = _HangWatchdog(self.groups[0], timeout, on_timeout)
            self.watchdog.start()
        self.closed = False

    def _run(self, command, chunks):
        if self.local:
            return [getattr(group, command)(chunk) for group, chunk in zip(self.groups, chunks, strict=True)]
        if self.closed:
            raise EnvWorkerError("the env workers are closed (after an error, or by close())")
        for w, (conn, chunk) in enumerate(zip(self.conns, chunks, strict=True)):
            try:
                conn.send_bytes(pickle.dumps((command, chunk), pickle.HIGHEST_PROTOCOL))
            except (BrokenPipeError, ConnectionResetError):
                process = self.processes[w]
                process.join(timeout=1)
                self.close()
                raise EnvWorkerError(
                    f"env worker {w} (envs {self._env_range(w)}) died with exit code {process.exitcode}"
                ) from None
        return self._receive_all()

    def _receive_all(self):
        """Every worker's reply. One wait on all the pipes at a time (not one per worker: on many cores the main
        process's per-worker overhead is what bounds the step), in slices of 1 s so that a dead or stuck worker
        is noticed instead of hanging forever."""
        replies = [None] * len(self.conns)
        pending = set(range(len(self.conns)))
        waited = 0.0
        while pending:
            ready = self._wait(pending)
            if not ready:
                waited += 1.0
                for w in pending:
                    process = self.processes[w]
                    if not process.is_alive():
                        self.close()
                        raise EnvWorkerError(
                            f"env worker {w} (envs {self._env_range(w)}) died with exit code {process.exitcode}"
                        )
                # A worker reports a hung env itself (naming it) after ``timeout``; this is the backstop if it cannot.
                if self.timeout is not None and waited >= self.timeout + WORKER_TIMEOUT_GRACE:
                    w = min(pending)
                    self.processes[w].terminate()  # stuck in an env: it would not answer "close" either
                    self.close()
                    raise EnvWorkerError(f"env worker {w} (envs {self._env_range(w)}) did not answer in {waited:.0f} s")
            for w in ready:
                if w in pending:
                    pending.discard(w)
                    replies[w] = self._read(w)
        return replies

    def _wait(self, pending):
        """Workers among ``pending`` whose reply (or EOF) can be read, waiting up to 1 s."""
        if self._poller is not None:  # one poll() system call on pipes registered once
            return [self._fd_worker[fd] for fd, _ in self._poller.poll(1000)]
        conns = mp_connection.wait([self.conns[w] for w in pending], timeout=1.0)
        return [self.conns.index(conn) for conn in conns]

    def _read(self, w):
        conn = self.conns[w]
        try:
            status, result = pickle.loads(conn.recv_bytes())
        except (EOFError, ConnectionError, OSError):
            process = self.processes[w]
            process.join(timeout=1)
            self.close()
            raise EnvWorkerError(
                f"env worker {w} (envs {self._env_range(w)}) died with exit code {process.exitcode}"
            ) from None
        if status == "error":
            message, _ = result
            self.close()
            raise EnvWorkerError(message)
        return result

    def _env_range(self, w):
        group = self.groups[w]
        return f"{group.first_index}..{group.first_index + len(group.envs) - 1}"

    def _split(self, values):
        return [values[g.first_index : g.first_index + len(g.envs)] for g in self.groups]

    def reset(self, seed: int | None = None) -> Any:
        seeds = [None if seed is None else seed + i for i in range(self.num_envs)]
        return self._join_obs(self._run("reset", self._split(seeds)))

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[int, Any]]:
        if isinstance(actions, np.ndarray) and actions.ndim == 1 and actions.dtype.kind in "iu":
            # Discrete actions as Python ints: they pickle several times faster than an array, and Minigrid
            # compares the action with IntEnum members, which numpy's int64 makes slow (it probes the enum class
            # for array attributes at every comparison): measured 37.8k vs 23.1k steps/s of one fast-obs env.
            actions = actions.tolist()
        results = self._run("step", self._split(actions))
        final_obs = {}
        for result in results:
            final_obs.update(result[4])
        return (
            self._join_obs([r[0] for r in results]),
            self._join([r[1] for r in results], np.float32),
            self._join([r[2] for r in results], bool),
            self._join([r[3] for r in results], bool),
            final_obs,
        )

    def _join_obs(self, parts):
        if self.shared is None:
            return concat_obs(parts)
        return self.shared.gather(parts, [(g.first_index, len(g.envs)) for g in self.groups])

    def _join(self, parts, dtype):
        """One array of the groups' per-env numbers (arrays, or lists from workers)."""
        if len(parts) == 1:
            return np.asarray(parts[0], dtype=dtype)
        return np.fromiter(itertools.chain.from_iterable(parts), dtype=dtype, count=self.num_envs)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.watchdog is not None:
            self.watchdog.stop()
        if self.local:
            for group in self.groups:
                for env in group.envs:
                    env.close()
            return
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join(timeout=5)
        for conn in self.conns:
            conn.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class VectorEnvBatch(EnvBatch):
    """Adapts a ``gymnasium.vector.VectorEnv`` created with ``autoreset_mode=AutoresetMode.SAME_STEP``."""

    def __init__(self, env: gym.vector.VectorEnv):
        mode = env.metadata.get("autoreset_mode")
        if mode is not None and getattr(mode, "value", mode) != gym.vector.AutoresetMode.SAME_STEP.value:
            raise ValueError(
                f"torch_rl needs the vector env's final observations in the step that ends an episode, but its "
                f"autoreset_mode is {mode}; create it with autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP"
            )
        self.env = env
        self.num_envs = env.num_envs
        self.single_action_space = env.single_action_space
        self.single_observation_space = env.single_observation_space
        self.accepts_torch_actions = bool(getattr(env, "accepts_torch_actions", False))

    @property
    def compile_seconds(self) -> float:
        return float(getattr(self.env, "compile_seconds", 0.0))

    def reset(self, seed: int | None = None) -> Any:
        obs, _ = self.env.reset(seed=seed)
        return obs

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict]:
        obs, reward, terminated, truncated, info = self.env.step(actions)
        return obs, reward, terminated, truncated, info

    def has_final_obs(self, info: dict) -> bool:
        return "final_obs" in info  # Gymnasium's vector envs (and BatchedMiniGridEnv) add it where an episode ended

    def final_obs_batch(self, info: dict, indices: list[int]) -> Any:
        final_obs = info["final_obs"]
        if isinstance(final_obs, np.ndarray) and final_obs.dtype == object:  # Gymnasium's per-env array
            return stack_obs([final_obs[i] for i in indices])
        return index_obs(final_obs, indices)  # already a batch, e.g. of tensors

    def close(self) -> None:
        self.env.close()


def make_env_batch(
    envs: Sequence[gym.Env] | gym.vector.VectorEnv | EnvBatch, num_workers: int | None = None
) -> EnvBatch:
    """An EnvBatch for a list of Gymnasium envs or a Gymnasium VectorEnv."""
    if isinstance(envs, EnvBatch):
        return envs
    if isinstance(envs, gym.vector.VectorEnv):
        return VectorEnvBatch(envs)
    if isinstance(envs, gym.Env):
        raise TypeError("envs must be a list of Gymnasium environments or a VectorEnv, not one env: pass [env]")
    return ParallelEnv(list(envs), num_workers=num_workers)


def actions_for_env(actions: torch.Tensor, action_space: gym.Space, as_tensor: bool = False) -> Any:
    """Sampled actions (a tensor on any device) in the form the envs expect."""
    if as_tensor:
        return actions
    actions = actions.detach().cpu().numpy()
    if isinstance(action_space, gym.spaces.Box):
        actions = actions.reshape((len(actions), *action_space.shape)).astype(action_space.dtype, copy=False)
        return np.clip(actions, action_space.low, action_space.high)
    if isinstance(action_space, gym.spaces.Discrete):
        return actions.astype(np.int64, copy=False) + int(action_space.start)
    return actions
