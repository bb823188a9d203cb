"""``compile=True``: hot paths as torch.compile graphs of fixed shapes, each timing its first call (the compile).

At small batches a PPO update is hundreds of tiny ops, and Python and dispatch overhead, not arithmetic, sets the
time (see docs/speed.md). Compiling fuses them. The algorithms (``A2CAlgo``, ``PPOAlgo``) compile:

- **acting**: the model's forward on a step's input, sampling and the action's log-probability;
- **the gradient step**, on a CPU as one graph (torch_rl/algos/graph_step.py): gathering the mini-batch's rows, the
  model's forward, the loss, its gradient, clipping and the optimizer's step. Where that graph does not apply (on
  CUDA, under torch.distributed, with another optimizer or a learning-rate schedule), in parts: the mini-batch
  loss, whose backward AOTAutograd compiles along with it; clipping; and the optimizer's step, except under a
  schedule (a compiled step is specialised on the learning rate).

What stays eager there: preprocessing (``preprocess_obss`` may take lists and strings), the env step, the first
step of the first rollout (which checks the model's outputs, see torch_rl/algos/checks.py), the first gradient step
(which makes the optimizer's state) and the value of truncated episodes' final observations (a varying number of
rows). Shapes are static (``dynamic=False``): a rollout's last mini-batch, when it is smaller, gets a graph of its
own. On CUDA these graphs are replayed as CUDA graphs (``mode="reduce-overhead"``).

``BatchedMiniGridEnv(compile=True)`` compiles its view the same way, without CUDA graphs: a replayed graph's
outputs are overwritten by the next replay, and an env's observations are the caller's to keep. BabyAI's
verifier compiles its verdict too.

The compile time is paid by the first calls (``CompiledFunction.seconds``, summed into the logs). Inductor keeps
what it compiled in its on-disk cache (``TORCHINDUCTOR_CACHE_DIR``, by default under the system's temporary folder),
so a second run of the same model and settings starts faster.
"""

import time
from collections.abc import Callable

import torch


class CompiledFunction:
    """``torch.compile(fn)``, timing its first call (the compile, on first use); ``cuda_graphs``: replayed as CUDA
    graphs; ``options``: Inductor settings for this graph only."""

    def __init__(self, fn: Callable, cuda_graphs: bool = False, options: dict | None = None):
        options = dict(options or {})
        if cuda_graphs:
            options["triton.cudagraphs"] = True  # all that mode="reduce-overhead" sets, which excludes options
        self.compiled = torch.compile(fn, dynamic=False, options=options or None)
        self.seconds = 0.0  # the first call's wall time, compile included, once it ran
        self.called = False

    def __call__(self, *args, **kwargs):
        if self.called:
            return self.compiled(*args, **kwargs)
        start = time.perf_counter()
        result = self.compiled(*args, **kwargs)
        self.seconds, self.called = time.perf_counter() - start, True
        return result
