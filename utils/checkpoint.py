"""The checkpoint (status.pt in a model folder): every key it holds, how it is saved, and how it is loaded.

A checkpoint is data, never code: it is read with ``torch.load(weights_only=True)``, which rebuilds tensors and
plain containers only and refuses anything that would call a function, and each field is checked before it is
used (its form, and its values: every tensor and number finite, every variance >= 0), so that a crafted or damaged
file ends in one line naming what is wrong. Checkpoints written before this
module (same keys) load as they are; a key added later gets a default.
"""

import io
import math
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field

import torch

from utils.errors import UsageError
from utils.format import IMAGE_ENCODINGS, OBS_VARIANTS
from utils.storage import atomic_write, file_identity, open_for_reading, status_path

# The keys of status.pt.
NUM_FRAMES = "num_frames"
UPDATE = "update"
DURATION = "duration"
MODEL = "model_state"
OPTIMIZER = "optimizer_state"
REWARD_SCALER = "reward_scaler"
LR_SCHEDULER = "lr_scheduler"
EXPLORATION_BONUS = "exploration_bonus"
OBS_NORMALIZER = "obs_normalizer"
VOCAB = "vocab"
BEST_EVAL_RETURN = "best_eval_return"  # the best mean return of an evaluation during training, status_best.pt's
CONFIG = "config"
# The parts of BaseAlgo.state_dict() and of the preprocessor's state_dict(), and their keys in status.pt.
ALGO_KEYS = {
    "optimizer": OPTIMIZER,
    "reward_scaler": REWARD_SCALER,
    "lr_scheduler": LR_SCHEDULER,
    "exploration_bonus": EXPLORATION_BONUS,
}
PREPROCESSOR_KEYS = {"vocab": VOCAB, "obs_normalizer": OBS_NORMALIZER}

# The config keys that fix the model's architecture (the model is rebuilt from them), and "args": all the flags.
ARCHITECTURE_KEYS = ("env", "algo", "use_memory", "use_text", "image_encoding", "obs")
ARCHITECTURE_DEFAULTS = {
    "env": "?",
    "algo": "?",
    "use_memory": False,
    "use_text": False,
    "image_encoding": "raw",
    "obs": "partial",  # models saved before --obs saw the partial view
}
ARGS = "args"
BEST_STATUS_FILE = "status_best.pt"
ALGOS = ("a2c", "ppo")


@dataclass
class Checkpoint:
    """What training saves: counters, the model's parameters, what the algorithm and the preprocessor own, and
    the config (architecture keys and the flags)."""

    num_frames: int = 0
    update: int = 0
    duration: float = 0.0
    best_eval_return: float | None = None
    model_state: dict | None = None
    algo_state: dict = field(default_factory=dict)
    preprocessor_state: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    path: str | None = None  # where it was loaded from
    identity: tuple | None = None  # status.pt's (inode, size, mtime) when loaded

    def architecture(self) -> dict:
        """The architecture keys of the config, with what checkpoints older than a key used."""
        return {key: self.config.get(key, ARCHITECTURE_DEFAULTS[key]) for key in ARCHITECTURE_KEYS}

    def to_dict(self) -> dict:
        status = {NUM_FRAMES: self.num_frames, UPDATE: self.update, DURATION: self.duration, MODEL: self.model_state}
        if self.best_eval_return is not None:
            status[BEST_EVAL_RETURN] = self.best_eval_return
        status |= {ALGO_KEYS[k]: v for k, v in self.algo_state.items() if v is not None}
        status |= {PREPROCESSOR_KEYS[k]: v for k, v in self.preprocessor_state.items() if v is not None}
        status[CONFIG] = self.config
        return status


def make_config(args: dict) -> dict:
    """The config saved with a model: its architecture keys, and every flag under "args". Flags made before --obs
    (a script of one's own that builds them for utils.training.Trainer) saw the partial view."""
    return (
        {key: args[key] for key in ARCHITECTURE_KEYS if key != "obs"}
        | {"obs": args.get("obs", "partial")}
        | {ARGS: dict(args)}
    )


def best_status_path(model_dir) -> str:
    """status_best.pt: the checkpoint of the best evaluation so far (scripts.train --eval-interval), beside the
    last one; it holds the same keys."""
    return os.path.join(model_dir, BEST_STATUS_FILE)


def _path(model_dir, best):
    return best_status_path(model_dir) if best else status_path(model_dir)


def exists(model_dir, best: bool = False) -> bool:
    return os.path.lexists(_path(model_dir, best))


def save(checkpoint: Checkpoint, model_dir, best: bool = False) -> None:
    """Writes status.pt (``best``: status_best.pt) atomically (utils.storage.atomic_write): a crash at any moment
    leaves a loadable checkpoint; a failed write (utils.storage.WriteError) leaves the previous one.

    The checkpoint is serialised in memory first (it is small): torch.save writing to a file that a full disk
    cuts short raises RuntimeError ("unexpected pos"), which would hide the OSError that makes it one line."""
    data = io.BytesIO()
    torch.save(checkpoint.to_dict(), data)
    atomic_write(_path(model_dir, best), lambda f: f.write(data.getbuffer()), binary=True)


def load(model_dir, map_location="cpu", best: bool = False) -> Checkpoint:
    """The checkpoint in ``model_dir`` (``best``: its best one, status_best.pt), checked field by field; a
    UsageError (one line) if it is missing, cannot be read safely, or a field is malformed."""
    path = _path(model_dir, best)
    if best and not exists(model_dir, best) and exists(model_dir):
        raise UsageError(
            f"the model in {model_dir} has no best checkpoint ({BEST_STATUS_FILE}): it is kept when training "
            "evaluates (python -m scripts.train --eval-interval N); drop --best to use the last one"
        )
    if not exists(model_dir, best):
        raise UsageError(
            f"no trained model in {model_dir}: train one first with "
            f"python -m scripts.train --model {os.path.basename(model_dir)} --env ..."
        )
    identity = file_identity(path)
    status = _read(path, map_location)
    checkpoint = from_dict(status, path)
    checkpoint.identity = identity
    return checkpoint


def _read(path, map_location):
    try:
        with open_for_reading(path) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols on stderr: the error says it all
            return torch.load(f, map_location=map_location, weights_only=True)
    except UsageError:
        raise
    except pickle.UnpicklingError as error:
        message = str(error)
        refused = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) (\S+)", message)
        if refused:
            raise UsageError(
                f"refused to load {path}: it would call {refused.group(1)}, and a torch_rl checkpoint holds only "
                "tensors, numbers and strings; the file may be unsafe: delete it, or train under another --model"
            ) from None
        if "Weights only load failed" in message:
            operand = re.search(r"Unsupported operand (\d+)", message)
            detail = f"pickle operand {operand.group(1)}" if operand else "a type a checkpoint never holds"
            raise UsageError(
                f"the checkpoint {path} is corrupt or truncated, or not plain data: refused to load it ({detail}), "
                "as the file may be unsafe; restore it from a backup or train under another --model"
            ) from None
        raise _corrupt(path, error) from None
    except Exception as error:
        raise _corrupt(path, error) from None


def _corrupt(path, error):
    return UsageError(
        f"the checkpoint {path} is corrupt or truncated ({type(error).__name__}); "
        "restore it from a backup or train under another --model"
    )


class _Malformed(Exception):
    pass


def from_dict(status, path="status.pt") -> Checkpoint:
    """A Checkpoint from a loaded status.pt, each field checked (a UsageError naming the first malformed one)."""
    if not isinstance(status, dict) or MODEL not in status:
        raise UsageError(f"the checkpoint {path} is not a torch_rl model; train under another --model")
    try:
        checkpoint = Checkpoint(
            num_frames=_counter(status, NUM_FRAMES),
            update=_counter(status, UPDATE),
            duration=_duration(status),
            best_eval_return=_optional_number(status, BEST_EVAL_RETURN),
            model_state=_check(status, MODEL, _is_tensor_dict, "is not a dict of named tensors", required=True),
            algo_state={
                "optimizer": _check(status, OPTIMIZER, _is_optimizer_state, _OPTIMIZER_FORM),
                "reward_scaler": _check(status, REWARD_SCALER, _is_running_stats, _STATS_FORM),
                "lr_scheduler": _check(status, LR_SCHEDULER, _is_scheduler_state, _SCHEDULER_FORM),
                "exploration_bonus": _check(status, EXPLORATION_BONUS, _is_state_dict, _PLAIN_FORM),
            },
            preprocessor_state={
                "vocab": _check(status, VOCAB, _is_vocab, "is not a dict of words to token ids"),
                "obs_normalizer": _check(status, OBS_NORMALIZER, _is_running_stats, _STATS_FORM),
            },
            config=_config(status),
            path=path,
        )
        _check_values(status)
        return checkpoint
    except _Malformed as error:
        raise UsageError(
            f"the checkpoint {path} is malformed: {error}; restore it from a backup or train under another --model"
        ) from None


_OPTIMIZER_FORM = "is malformed (a torch optimizer's state_dict: 'state' a dict, 'param_groups' a list of dicts)"
_SCHEDULER_FORM = "is malformed (a torch LR scheduler's state_dict: 'last_epoch' a whole number, 'base_lrs' numbers)"
_PLAIN_FORM = "is malformed (a dict of named tensors, numbers and dicts or lists of them)"
_STATS_FORM = "is malformed (a dict of 'mean' and 'var', float tensors of one shape, and 'count', a number > 0)"


def _check(status, key, is_valid, problem, required=False):
    """``status[key]`` (None if absent and not ``required``) if ``is_valid``; else _Malformed naming the key."""
    value = status.get(key)
    if (value is not None or required) and not is_valid(value):
        raise _Malformed(f"its {key} {problem}")
    return value


def _counter(status, key):
    value = status.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Malformed(f"its {key} is not a whole number >= 0 (got {_describe(value)})")
    return value


def _duration(status):
    value = status.get(DURATION, 0.0)
    if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise _Malformed(f"its {DURATION} is not a number of seconds >= 0 (got {_describe(value)})")
    return float(value)


def _optional_number(status, key):
    value = status.get(key)
    if value is not None and (not _is_number(value) or not math.isfinite(value)):
        raise _Malformed(f"its {key} is not a finite number (got {_describe(value)})")
    return None if value is None else float(value)


# The fields whose every tensor and number must be finite: a NaN parameter makes a model act at random (or torch
# raise deep inside), a NaN statistic turns every observation or reward into NaN.
_FINITE_KEYS = (MODEL, OPTIMIZER, REWARD_SCALER, LR_SCHEDULER, EXPLORATION_BONUS, OBS_NORMALIZER)


def _check_values(status):
    """_Malformed naming the first field (down to its tensor) that holds NaN or an infinity, or a running
    statistic's negative variance; the fields' forms are checked already."""
    for key in _FINITE_KEYS:
        where = _first_non_finite(status.get(key), key)
        if where is not None:
            raise _Malformed(f"its {where} holds NaN or infinite values")
    for key in (REWARD_SCALER, OBS_NORMALIZER):
        stats = status.get(key)
        if stats is not None and bool((stats["var"] < 0).any()):
            raise _Malformed(f"its {key}['var'] is negative, and a variance is never below 0")


def _first_non_finite(value, where, depth=0):
    """``where`` extended to the first tensor or float in ``value`` (nested dicts and lists) that is not finite,
    e.g. "model_state['actor.0.weight']"; None if all are."""
    if isinstance(value, torch.Tensor):
        finite = not (value.is_floating_point() or value.is_complex()) or bool(torch.isfinite(value).all())
        return None if finite else where
    if isinstance(value, float):
        return None if math.isfinite(value) else where
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    if depth > 8:  # deeper than any state torch_rl saves: the form checks refuse it
        return None
    for key, item in items:
        found = _first_non_finite(item, f"{where}[{key!r}]", depth + 1)
        if found is not None:
            return found
    return None


def _config(status):
    config = status.get(CONFIG, {})
    if not isinstance(config, dict):
        raise _Malformed(f"its {CONFIG} is not a dict (got {_describe(config)})")
    checks = {
        "env": (lambda v: isinstance(v, str), "an env id"),
        "algo": (lambda v: v in ALGOS, f"one of {ALGOS}"),
        "use_memory": (lambda v: isinstance(v, bool), "True or False"),
        "use_text": (lambda v: isinstance(v, bool), "True or False"),
        "image_encoding": (lambda v: v in IMAGE_ENCODINGS, f"one of {IMAGE_ENCODINGS}"),
        "obs": (lambda v: v in OBS_VARIANTS, f"one of {OBS_VARIANTS}"),
        ARGS: (lambda v: isinstance(v, dict), "a dict"),
    }
    for key, (is_valid, expected) in checks.items():
        if key in config and not is_valid(config[key]):
            raise _Malformed(f"its {CONFIG}[{key!r}] is not {expected} (got {_describe(config[key])})")
    return config


def _describe(value):
    text = repr(value) if isinstance(value, (int, float, str, bool, type(None))) else type(value).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_tensor_dict(value):
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def _is_optimizer_state(value):
    return (
        isinstance(value, dict)
        and isinstance(value.get("state"), dict)
        and isinstance(value.get("param_groups"), list)
        and all(
            isinstance(group, dict)
            and isinstance(group.get("params"), list)
            and all(isinstance(i, int) for i in group["params"])
            for group in value["param_groups"]
        )
        and all(isinstance(s, dict) for s in value["state"].values())
    )


def _is_scheduler_state(value):
    return (
        isinstance(value, dict)
        and isinstance(value.get("last_epoch"), int)
        and not isinstance(value["last_epoch"], bool)
        and value["last_epoch"] >= 0
        and isinstance(value.get("base_lrs"), list)
        and all(_is_number(lr) and math.isfinite(lr) and lr >= 0 for lr in value["base_lrs"])
    )


def _is_state_dict(value):
    return isinstance(value, dict) and _is_plain_state(value)


def _is_plain_state(value, depth=0):
    """A state_dict of tensors, numbers, strings and None, in dicts (str or int keys) and lists, nested a little."""
    if depth > 8:
        return False
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _is_plain_state(v, depth + 1) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_is_plain_state(v, depth + 1) for v in value)
    return value is None or isinstance(value, (torch.Tensor, int, float, bool, str))


def _is_running_stats(value):
    if not isinstance(value, dict):
        return False
    mean, var, count = value.get("mean"), value.get("var"), value.get("count")
    return (
        isinstance(mean, torch.Tensor)
        and isinstance(var, torch.Tensor)
        and mean.is_floating_point()
        and var.is_floating_point()
        and mean.shape == var.shape
        and _is_number(count)
        and math.isfinite(count)
        and count > 0
    )


def _is_vocab(value):
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in value.items()
    )


def changed_since_loaded(checkpoint: Checkpoint | None, model_dir) -> bool:
    """Whether status.pt was replaced since ``checkpoint`` was loaded from it (None: there was none)."""
    before = checkpoint.identity if checkpoint is not None else None
    return file_identity(status_path(model_dir)) != before
