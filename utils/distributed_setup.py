"""Joining a torchrun job: rank, world size and device of this process (a plain run is rank 0 of 1)."""

import os

import torch
import torch.distributed as dist

from utils.errors import UsageError


def init_distributed(device_arg):
    """Joins the process group when started by torchrun (WORLD_SIZE > 1): gloo on CPU, nccl with one GPU per rank.

    Returns (rank, world_size, device or None to keep the plain-run choice).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return 0, 1, None
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    wants_cuda = (device_arg or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    if wants_cuda:
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
        dist.init_process_group("nccl", device_id=device)
    else:
        device = torch.device("cpu")
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size(), device


def broadcast_object(obj, rank):
    """Rank 0's ``obj`` on every rank."""
    box = [obj if rank == 0 else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_lists(values, world_size):
    """Concatenation of every rank's list (same call on all ranks)."""
    if world_size == 1:
        return values
    gathered = [None] * world_size
    dist.all_gather_object(gathered, values)
    return [v for part in gathered for v in part]


def parameters_agree(module, world_size):
    """True if every rank holds exactly the same parameters (checked with a checksum all-gather)."""
    if world_size == 1:
        return True
    checksum = float(sum(p.detach().double().sum().item() * (i + 1) for i, p in enumerate(module.parameters())))
    gathered = [None] * world_size
    dist.all_gather_object(gathered, checksum)
    return all(c == gathered[0] for c in gathered)


def shutdown_distributed():
    """Leaves the process group together: a rank that tears down its gloo threads while a peer is still
    talking to it aborts the process ("terminate called without an active exception")."""
    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def decided_by_rank0(decide, rank, world_size):
    """``decide()``'s result on every rank, computed by rank 0 alone (e.g. reading a checkpoint: storage need not
    be shared between machines); a UsageError it raises is raised on every rank, so that all stop together."""
    if rank == 0:
        try:
            outcome = ("ok", decide())
        except UsageError as error:
            outcome = ("error", str(error))
    if world_size > 1:
        outcome = broadcast_object(outcome if rank == 0 else None, rank)
    if outcome[0] == "error":
        raise UsageError(outcome[1])
    return outcome[1]
