"""``compile=True``: the algorithm's three hot paths as torch.compile graphs of fixed shapes.

At small batches a PPO update is hundreds of tiny ops, and Python and dispatch overhead, not arithmetic, sets the
time (see docs/speed.md). Compiling fuses them:

- **acting**: the model's forward on a step's input, sampling and the action's log-probability;
- **the mini-batch loss**: gathering the mini-batch's rows, the model's forward and the loss; AOTAutograd compiles
  its backward along with it;
- **the gradient step**: clipping the gradient's norm and the optimizer's step.

What stays eager: preprocessing (``preprocess_obss`` may take lists and strings), the env step, the first step of
the first rollout (which checks the model's outputs, see torch_rl/algos/checks.py) and the value of truncated
episodes' final observations (a varying number of rows). Shapes are static (``dynamic=False``): a rollout's last
mini-batch, when it is smaller, gets a graph of its own. On CUDA the graphs are replayed as CUDA graphs
(``mode="reduce-overhead"``).

The compile time is paid by the first calls; ``CompiledFunction.seconds`` adds it up for the logs. Inductor keeps
what it compiled in its on-disk cache (``TORCHINDUCTOR_CACHE_DIR``, by default under the system's temporary folder),
so a second run of the same model and settings starts faster.
"""

import time
from collections.abc import Callable

import torch


class CompiledFunction:
    """``torch.compile(fn)`` for ``device``, timing its first call (the compile, on first use)."""

    def __init__(self, fn: Callable, device: torch.device):
        mode = "reduce-overhead" if device.type == "cuda" else None
        self.compiled = torch.compile(fn, dynamic=False, mode=mode)
        self.seconds = None  # the first call's wall time, compile included, once it ran

    def __call__(self, *args, **kwargs):
        if self.seconds is not None:
            return self.compiled(*args, **kwargs)
        start = time.perf_counter()
        result = self.compiled(*args, **kwargs)
        self.seconds = time.perf_counter() - start
        return result


def compile_seconds(functions: list[CompiledFunction]) -> float:
    """The first calls' time, compile included, of the functions that ran."""
    return sum(f.seconds for f in functions if f.seconds is not None)
