"""What the algorithms check of what their caller gives them, so that a mistake is named in the caller's words.

- Constructor arguments, where they are set (``check_int``, ``check_number``, ``check_callable``), before any env
  worker is started.
- The first outputs of the caller's functions (``check_model_input``, ``check_model_output``, ``check_actions``):
  once, at the first step of the first rollout. What a model or ``preprocess_obss`` returns keeps its type and
  shape from one step to the next, and checking every step would tax the per-step path for nothing.
- Both positional orders of the constructors (``accepts_torch_rl_order``): torch-ac 1.4's, with ``device`` third,
  and the original torch-rl's, without it.
"""

import functools
import inspect
import math
import numbers
from typing import Any

import torch
from torch import nn

from torch_rl.dictlist import DictList


def describe(value: Any) -> str:
    """``value`` as an error message shows what came: its type and a short repr (or its shape, for a tensor)."""
    if value is None:
        return "None"
    if isinstance(value, torch.Tensor):
        return f"Tensor of shape {tuple(value.shape)}"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


# -------------------------------------------------------------------------------------- constructor arguments
def check_int(name: str, value: Any, minimum: int, allow_none: bool = False) -> None:
    """An int (a Python or numpy integer, not a bool) >= ``minimum``; None too where ``allow_none``."""
    if value is None and allow_none:
        return
    expected = f"{'None or ' if allow_none else ''}an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {expected}, got {describe(value)}")
    if value < minimum:
        raise ValueError(f"{name} must be {expected}, got {value}")


def check_number(
    name: str,
    value: Any,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """A finite real number (not a bool) between ``low`` and ``high``, each end open or closed."""
    if high == math.inf:
        expected = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        expected = f"a number in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {describe(value)}")
    number = float(value)
    too_low = number <= low if low_open else number < low
    too_high = number >= high if high_open else number > high
    if not math.isfinite(number) or too_low or too_high:
        raise ValueError(f"{name} must be {expected}, got {value!r}")


def check_callable(name: str, value: Any) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be None or a function, got {describe(value)}")


def check_acmodel(acmodel: Any) -> None:
    if not isinstance(acmodel, nn.Module):
        raise TypeError(
            "acmodel must be a torch.nn.Module implementing torch_rl.ACModel or torch_rl.RecurrentACModel, "
            f"got {type(acmodel).__name__}"
        )
    if getattr(acmodel, "recurrent", False):
        check_int("acmodel.memory_size", acmodel.memory_size, 1)


# ----------------------------------------------------------------------------------- first outputs, checked once
def check_model_input(obs: Any, num_envs: int) -> None:
    """What ``preprocess_obss`` returned for the N observations of the first step."""
    if not isinstance(obs, (torch.Tensor, DictList)):
        raise TypeError(f"preprocess_obss must return a tensor or a DictList of tensors, got {_type_name(obs)}")
    expected = f"preprocess_obss must return one row per observation ({num_envs})"
    if isinstance(obs, torch.Tensor):
        if obs.dim() == 0:
            raise ValueError(f"{expected}, got a Tensor of shape ()")
        rows = len(obs)
    else:
        try:
            rows = len(obs)  # DictList checks that its values have a length, and the same
        except (TypeError, ValueError) as error:
            raise ValueError(f"{expected}: {error}") from None
    if rows != num_envs:
        raise ValueError(f"{expected}, got a {type(obs).__name__} of {rows} rows")


def check_model_output(output: Any, recurrent: bool, num_envs: int, memory_size: int | None) -> tuple:
    """What the model returned at the first step; returns (dist, value, memory or None)."""
    if recurrent:
        call, names, size = "acmodel(obs, memory)", "(dist, value, memory) (see torch_rl.RecurrentACModel)", 3
    else:
        call, names, size = "acmodel(obs)", "(dist, value) (see torch_rl.ACModel)", 2
    if not isinstance(output, (tuple, list)):
        raise TypeError(f"{call} must return {names}, got {describe(output)}")
    if len(output) != size:
        raise TypeError(f"{call} must return {names}, got a {type(output).__name__} of {len(output)}")
    dist, value = output[0], output[1]
    if not all(callable(getattr(dist, method, None)) for method in ("sample", "log_prob", "entropy")):
        raise TypeError(f"acmodel's dist must be a torch.distributions.Distribution, got {describe(dist)}")
    expected = f"acmodel's value must be a tensor of shape ({num_envs},) (one per env)"
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{expected}, got {describe(value)}")
    if tuple(value.shape) != (num_envs,):
        raise ValueError(f"{expected}, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"acmodel's value must be a floating-point tensor, got dtype {value.dtype}")
    if not recurrent:
        return dist, value, None
    memory = output[2]
    expected = f"acmodel's memory must be a tensor of shape ({num_envs}, {memory_size}) (memory_size {memory_size})"
    if not isinstance(memory, torch.Tensor):
        raise TypeError(f"{expected}, got {describe(memory)}")
    if tuple(memory.shape) != (num_envs, memory_size):
        raise ValueError(f"{expected}, got shape {tuple(memory.shape)}")
    if not memory.is_floating_point():
        raise TypeError(f"acmodel's memory must be a floating-point tensor, got dtype {memory.dtype}")
    return dist, value, memory


def check_actions(action: torch.Tensor, log_prob: torch.Tensor, num_envs: int) -> None:
    """What the model's distribution gave at the first step: one action, and one log-probability, per env."""
    if action.dim() == 0 or len(action) != num_envs:
        raise ValueError(
            f"acmodel's dist must give one action per env ({num_envs}), its sample has shape {tuple(action.shape)}"
        )
    if tuple(log_prob.shape) != (num_envs,):
        raise ValueError(
            f"acmodel's dist must give one log-probability per env ({num_envs},) (for several action dimensions, "
            f"wrap it in torch.distributions.Independent), got shape {tuple(log_prob.shape)}"
        )


def reshape_reward_error(values: list) -> TypeError:
    """The error for rewards returned by ``reshape_reward`` that torch could not turn into a float tensor."""
    wrong = next((v for v in values if not isinstance(v, numbers.Real)), values[0])
    return TypeError(f"reshape_reward(obs, action, reward, done) must return a number, got {describe(wrong)}")


def _type_name(value):
    return "None" if value is None else type(value).__name__


# ----------------------------------------------------------------------------------- the two positional orders
def accepts_torch_rl_order(init):
    """Lets an algorithm's ``__init__`` (written in torch-ac 1.4's order: ``envs, acmodel, device,
    num_frames_per_proc, ...``) also take the original torch-rl's positional order, which has no ``device``
    (``envs, acmodel, num_frames_per_proc, discount, ...``). The third positional argument tells them apart:

    - an int is ``num_frames_per_proc``: torch-rl's order;
    - a ``torch.device``, a string or None is ``device``: torch-ac 1.4's order. One exception: None followed by a
      float is torch-rl's order, whose ``scripts/train.py`` passes ``args.frames_per_proc`` (None by default, for
      the algorithm's default) then ``args.discount``, where torch-ac 1.4's order has ``num_frames_per_proc``, an
      int or None;
    - anything else is a TypeError naming both orders.

    Keyword arguments are never moved. The wrapped signature stays torch-ac 1.4's (``inspect.signature`` follows
    ``__wrapped__``).
    """
    parameters = list(inspect.signature(init).parameters.values())[1:]  # without self
    positional = [p.name for p in parameters if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    torch_rl_names = [name for name in positional if name != "device"]
    torch_ac_order = ", ".join(positional[:4]) + ", ..."
    torch_rl_order = ", ".join(torch_rl_names[:4]) + ", ..."

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        if len(args) < 3 or not _is_torch_rl_order(type(self).__name__, args, torch_ac_order, torch_rl_order):
            return init(self, *args, **kwargs)
        cls = type(self).__name__
        if len(args) > len(torch_rl_names):
            raise TypeError(
                f"{cls} takes at most {len(torch_rl_names)} positional arguments in torch-rl's order "
                f"({torch_rl_order}), got {len(args)}"
            )
        if isinstance(args[2], numbers.Integral) and args[2] < 1:
            raise ValueError(
                f"the third positional argument, {args[2]}, is num_frames_per_proc in torch-rl's order "
                f"({torch_rl_order}) and must be at least 1; a device (third in torch-ac 1.4's order, "
                f"{torch_ac_order}) is a string or a torch.device: device='cuda:{args[2]}'"
            )
        moved = dict(zip(torch_rl_names[2:], args[2:], strict=False))
        for name in moved:
            if name in kwargs:
                raise TypeError(f"{cls} got multiple values for argument '{name}'")
        return init(self, *args[:2], **moved, **kwargs)

    return wrapper


def _is_torch_rl_order(cls, args, torch_ac_order, torch_rl_order):
    third = args[2]
    if isinstance(third, numbers.Integral) and not isinstance(third, bool):
        return True
    if third is None:
        fourth = args[3] if len(args) > 3 else None
        return isinstance(fourth, numbers.Real) and not isinstance(fourth, numbers.Integral)
    if isinstance(third, (str, torch.device)):
        return False
    raise TypeError(
        f"{cls}'s third positional argument is either device, in torch-ac 1.4's order ({torch_ac_order}): a "
        f"torch.device, a string or None; or num_frames_per_proc, in the original torch-rl's order "
        f"({torch_rl_order}): an int; got {describe(third)}"
    )
