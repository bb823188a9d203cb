"""Data-parallel training over processes, GPUs and machines with torch.distributed (e.g. under torchrun).

Each process ("rank") steps its own envs and computes gradients on its own experience; before every optimizer
step the gradients are averaged over ranks with one all-reduce, so all ranks keep identical parameters.
Why not DistributedDataParallel: a recurrent update runs the model ``recurrence`` times before one backward,
which DDP's one-forward-per-backward bucketing does not expect; one explicit all-reduce of a flat gradient is
as fast for models this small.
"""

from collections.abc import Iterable

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside a process group of more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """All-reduces the gradients of ``parameters`` (in one flat buffer) and divides them by the world size."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


def broadcast_parameters(module: torch.nn.Module, src: int = 0) -> None:
    """Copies rank ``src``'s parameters and buffers to every rank."""
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src)
