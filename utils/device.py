"""The device scripts.train runs on: the default, and a check of the one asked for."""

import torch

from utils.errors import UsageError


def default_device(batched):
    """cuda only for the batched env: with Python-stepped envs every step round-trips actions and observations
    between host and GPU, and the starter model is too small for the GPU to win that back (docs/speed.md, "On a GPU
    machine", has the measurements)."""
    return "cuda" if batched and torch.cuda.is_available() else "cpu"


def check_device(name):
    """A UsageError unless ``name`` is a CPU or an available CUDA device (the devices scripts.train runs on)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a torch device; use cpu or cuda") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: scripts.train runs on cpu or cuda, not {device.type}; use cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name} was asked for but no CUDA GPU is available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {name}: there are {torch.cuda.device_count()} CUDA GPUs (cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
