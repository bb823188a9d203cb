"""Data-parallel training with torch.distributed (gloo on CPU): ranks stay identical, frames add up."""

import os
import subprocess
import sys

import gymnasium as gym
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import torch_rl
from tests.models import MLPModel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _train_rank(rank, world_size, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.manual_seed(0)  # same initial parameters...
    model = MLPModel(4, 2)
    torch.manual_seed(100 + rank)  # ...different sampling and envs per rank
    envs = [gym.make("CartPole-v1") for _ in range(2)]
    with torch_rl.PPOAlgo(
        envs, model, num_frames_per_proc=32, batch_size=32, epochs=2, seed=1000 * rank, num_workers=0
    ) as algo:
        for _ in range(3):
            algo.update_parameters()
    torch.save(model.state_dict(), os.path.join(out_dir, f"rank{rank}.pt"))
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)  # skip C++ teardown, which now and then aborts after gloo use (see utils.training.exit_now)


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_keep_identical_parameters_that_differ_from_one_rank_alone(tmp_path):
    mp.spawn(_train_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt")
    rank1 = torch.load(tmp_path / "rank1.pt")
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key

    # A single process with rank 0's seeds ends elsewhere: the gradients really were averaged over ranks.
    torch.manual_seed(0)
    model = MLPModel(4, 2)
    torch.manual_seed(100)
    with torch_rl.PPOAlgo(
        [gym.make("CartPole-v1") for _ in range(2)],
        model,
        num_frames_per_proc=32,
        batch_size=32,
        epochs=2,
        seed=0,
        num_workers=0,
    ) as algo:
        for _ in range(3):
            algo.update_parameters()
    assert any(not torch.equal(rank0[k], v) for k, v in model.state_dict().items())


def test_torchrun_training_logs_from_rank_zero_and_counts_frames_of_all_ranks(tmp_path):
    env = dict(os.environ, TORCH_RL_STORAGE=str(tmp_path), OMP_NUM_THREADS="1")
    # --standalone: torchrun picks a free rendezvous port itself (no race on a port we chose)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "scripts.train",
        "--algo",
        "ppo",
        "--env",
        "MiniGrid-DoorKey-5x5-v0",
        "--model",
        "dist",
        "--procs",
        "2",
        "--frames-per-proc",
        "16",
        "--batch-size",
        "16",
        "--frames",
        "256",
        "--workers",
        "0",
    ]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "parameters identical on all ranks: yes" in result.stdout
    assert result.stdout.count("U 1 |") == 1  # one log line per update: rank 0 alone prints
    status = torch.load(tmp_path / "dist" / "status.pt", weights_only=False)
    # 2 ranks x 2 envs x 16 frames = 64 frames per update, 4 updates to reach 256
    assert status["update"] == 4 and status["num_frames"] == 256

    # resuming under torchrun continues the count
    command[command.index("256")] = "384"
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    status = torch.load(tmp_path / "dist" / "status.pt", weights_only=False)
    assert status["update"] == 6 and status["num_frames"] == 384
