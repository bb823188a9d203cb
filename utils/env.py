"""Creating environments by id, with errors that say what to do."""

import contextlib
import difflib
import importlib
import io
import logging

import gymnasium as gym
import numpy as np  # noqa: F401  (registers the MiniGrid-* ids)

from torch_rl import EnvWorkerError
from torch_rl.envs.fast_obs import is_minigrid_env, make_fast
from utils.errors import UsageError, one_line
from utils.format import OBS_VARIANTS

# The Minigrid wrapper of each --obs variant (minigrid.wrappers), applied by name; "partial" is the env's own view.
OBS_WRAPPERS = {"full": "FullyObsWrapper", "rgb": "RGBImgPartialObsWrapper", "rgb-full": "RGBImgObsWrapper"}


def check_env_id(env_id):
    """Raises a UsageError unless ``env_id`` is registered; ``module:id`` imports ``module`` first (as gym.make)."""
    if ":" in env_id:
        module, env_id = env_id.split(":", 1)
        if not all(part.isidentifier() for part in module.split(".")):
            raise UsageError(
                f"--env {module}:{env_id}: {module!r} is not a module name; write MODULE:ID, "
                "e.g. --env my_package.envs:MyEnv-v0"
            )
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise UsageError(
                f"cannot import {module!r}, the module of the environment {env_id!r} "
                f"({one_line(error)}); check the name, or install it"
            ) from None
        except Exception as error:  # the module itself raised while being imported
            raise UsageError(
                f"importing {module!r}, the module of the environment {env_id!r}, raised "
                f"{type(error).__name__}: {one_line(error)}"
            ) from None
    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see gymnasium.pprint_registry() for the ids"
        raise UsageError(f"unknown environment {env_id!r}{hint}")


def make_env(env_id, seed=None, render_mode=None, fast_obs=True, obs="partial"):
    """One environment, reset with ``seed`` so that it is ready to step.

    ``fast_obs``: MiniGrid envs compute their observations with torch_rl.envs.fast_obs (identical observations,
    faster steps: Minigrid's own Python observation code is most of a step's time); other envs are unchanged.
    ``obs``: one of OBS_VARIANTS; other than "partial", Minigrid's wrapper of OBS_WRAPPERS is applied on top (a
    UsageError for an env that is not a MiniGrid env). The wrappers build their images with Minigrid's own code
    (``grid.encode``, ``get_frame``), which the fast path leaves alone: their observations are exactly theirs.
    """
    check_env_id(env_id)
    if obs not in OBS_VARIANTS:
        raise ValueError(f"obs must be one of {OBS_VARIANTS}, got {obs!r}")
    try:
        # render_mode only when one is needed: an env whose constructor takes none can still be trained.
        env = gym.make(env_id) if render_mode is None else gym.make(env_id, render_mode=render_mode)
        if _prints_on_reset(env):
            env = QuietResets(env)
        if obs != "partial" and not is_minigrid_env(env):
            env.close()
            raise UsageError(
                f"--obs {obs} applies Minigrid's {OBS_WRAPPERS[obs]}, and {env_id} is not a MiniGrid env; "
                "drop --obs (or train on a MiniGrid env)"
            )
        fast = make_fast(env) if fast_obs else env
        if fast is env and isinstance(env.observation_space, gym.spaces.Box):
            fast = CheckedObservations(env)
        env = fast
        if obs != "partial":
            import minigrid.wrappers

            env = getattr(minigrid.wrappers, OBS_WRAPPERS[obs])(env)
    except UsageError:
        raise
    except gym.error.DependencyNotInstalled as error:
        raise UsageError(f"the environment {env_id} needs a package that is not installed: {one_line(error)}") from None
    except Exception as error:
        raise EnvWorkerError(f"creating the environment {env_id} failed: {type(error).__name__}: {error}") from error
    try:
        env.reset(seed=seed)
    except Exception as error:
        env.close()
        raise EnvWorkerError(f"the environment {env_id} raised in reset: {type(error).__name__}: {error}") from error
    return env


def _prints_on_reset(env):
    """BabyAI's levels (Minigrid's RoomGridLevel) print a line for each sample their generator rejects."""
    from minigrid.envs.babyai.core.roomgrid_level import RoomGridLevel

    return isinstance(env.unwrapped, RoomGridLevel)


class QuietResets(gym.Wrapper):
    """Keeps what a level generator prints on reset ("Sampling rejected: ...", dozens of lines per thousand
    episodes) out of the training log: the lines are counted (``rejected_samples``) and sent to the debug log."""

    def __init__(self, env):
        super().__init__(env)
        self.rejected_samples = 0

    def reset(self, **kwargs):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            result = self.env.reset(**kwargs)
        lines = printed.getvalue().splitlines()
        if lines:
            self.rejected_samples += len(lines)
            logging.getLogger("torch_rl.envs").debug("%s: %s", self.spec.id if self.spec else "env", " | ".join(lines))
        return result

    def step(self, action):  # an episode's end resets through reset(), where the lines are caught
        return self.env.step(action)


class CheckedObservations(gym.Wrapper):
    """Refuses an observation that does not fit the env's Box observation space (its shape, numbers): stacked with
    the other envs' it would fail later with an obscure error, or train on garbage. (MiniGrid's observations are
    made by torch_rl.envs.fast_obs and need no check.)"""

    def __init__(self, env):
        super().__init__(env)
        self._shape = env.observation_space.shape

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._check(obs, "reset")
        return obs, info

    def step(self, action):
        result = self.env.step(action)
        self._check(result[0], "step")
        return result

    def _check(self, obs, method):
        if isinstance(obs, np.ndarray) and obs.shape == self._shape and obs.dtype.kind in "biuf":
            return
        numeric = (np.ndarray, list, tuple, int, float, np.generic)
        array = np.asarray(obs) if isinstance(obs, numeric) else None
        if array is not None and array.shape == self._shape and array.dtype.kind in "biuf":
            return
        if array is not None and array.dtype.kind in "biuf":
            what = f"of shape {array.shape}"
        else:
            what = f"of type {type(obs).__name__} ({repr(obs)[:40]})"
        raise EnvWorkerError(
            f"the environment {self.spec.id if self.spec else type(self.env).__name__} returned from {method} an "
            f"observation {what}, where its observation space is {self.observation_space}; every observation "
            "must fit the space"
        )


def make_envs(env_id, num_envs, seed=0, render_mode=None, fast_obs=True, obs="partial"):
    return [make_env(env_id, seed + 10_000 * i, render_mode, fast_obs, obs) for i in range(num_envs)]


def check_batched_obs(obs, advice):
    """A UsageError unless the batched env can step the ``obs`` variant: it computes the partial view only."""
    if obs != "partial":
        raise UsageError(f"--batched steps MiniGrid's partial view only, not --obs {obs}; {advice}")


def make_batched_env(env_id, num_envs, device="cpu", seed=None, layout_seed=None, compile=False):
    """A BatchedMiniGridEnv: ``num_envs`` MiniGrid envs stepped as torch tensors on ``device``.

    ``layout_seed``: the base seed of the bank's layouts where it differs from ``seed`` (a resumed run keeps
    training on the same layouts, and its layout cache, while its envs' seed moves on). ``compile``: its view as a
    torch.compile graph."""
    from torch_rl.envs import SUPPORTED_ENV_IDS, BatchedMiniGridEnv
    from torch_rl.envs.minigrid.registry import family_names

    if env_id not in SUPPORTED_ENV_IDS:
        raise UsageError(
            f"--batched does not support {env_id}; it supports the MiniGrid families {', '.join(family_names())} "
            f"({len(SUPPORTED_ENV_IDS)} ids, listed in docs/batched-envs.md); drop --batched"
        )
    try:
        bank_options = {"seed": layout_seed} if layout_seed is not None else None
        return BatchedMiniGridEnv(
            env_id, num_envs, device=device, seed=seed, bank_options=bank_options, compile=compile
        )
    except RuntimeError as error:  # the layout bank's worker failed or timed out
        raise EnvWorkerError(f"creating the batched environment {env_id} failed: {one_line(error)}") from error
