"""Training throughput on MiniGrid, measured side by side in one run.

    python -m benchmarks.throughput [--quick] [--device cpu|cuda] [--procs 16]

Measures, on the same machine and env (MiniGrid-DoorKey-5x5-v0, default model, PPO 128 frames/env, 4 epochs,
batch 256): (1) the limit, stepping the envs with random actions and no learning, both plain Minigrid envs and
the envs as torch_rl steps them (with the fast exact observations); (2) torch_rl PPO and A2C training FPS;
(3) torch-ac 1.4.0 PPO (pip install -e ".[bench]") on plain envs and on the same envs as torch_rl, and
Stable-Baselines3 PPO (same model, hyper-parameters and envs, in-process DummyVecEnv); plus the
RSS of a torch_rl run over its updates. Contenders run in interleaved rounds and keep their best; the last line
prints the ratios.
"""

import argparse
import os
import resource
import sys
import time

import numpy as np
import torch

ENV_ID = "MiniGrid-DoorKey-5x5-v0"


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure_env_limit(procs, steps, workers=None, fast_obs=True):
    """Random-action steps/s of the same envs, stepped the way training steps them (no learning)."""
    import torch_rl
    from utils.env import make_envs

    env = torch_rl.ParallelEnv(make_envs(ENV_ID, procs, fast_obs=fast_obs), num_workers=workers)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 7, size=(steps, procs))
    env.step(actions[0])
    start = time.perf_counter()
    for t in range(steps):
        env.step(actions[t])
    fps = steps * procs / (time.perf_counter() - start)
    env.close()
    return fps


def measure_single_env(steps):
    """Minigrid's own speed: one plain env, random actions."""
    import gymnasium as gym
    import minigrid  # noqa: F401

    env = gym.make(ENV_ID)
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 7, size=steps)
    start = time.perf_counter()
    for a in actions:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def measure_torch_rl(algo_name, procs, updates, device, workers=None):
    """Frames/s of torch_rl training with the starter files' model and defaults, as the training log counts."""
    import torch_rl
    from model import ACModel
    from utils.env import make_envs
    from utils.format import get_obss_preprocessor

    torch.manual_seed(0)
    envs = make_envs(ENV_ID, procs)
    obs_space, preprocess = get_obss_preprocessor(envs[0].observation_space, use_text=False)
    model = ACModel(obs_space, envs[0].action_space)
    cls = torch_rl.PPOAlgo if algo_name == "ppo" else torch_rl.A2CAlgo
    kwargs = dict(
        num_frames_per_proc=128 if algo_name == "ppo" else 5,
        device=device,
        preprocess_obss=preprocess,
        num_workers=workers,
    )
    with cls(envs, model, **kwargs) as algo:
        algo.update_parameters()  # warm-up
        rss_start = rss_mb()
        frames, start = 0, time.perf_counter()
        for _ in range(updates):
            frames += algo.update_parameters()["num_frames"]
        fps = frames / (time.perf_counter() - start)
        return fps, rss_start, rss_mb()


def measure_torch_ac(procs, updates, device, fast_obs=False):
    try:
        import torch_ac
    except ImportError:
        return None
    from model import ACModel
    from utils.env import make_envs
    from utils.format import get_obss_preprocessor

    torch.manual_seed(0)
    envs = make_envs(ENV_ID, procs, fast_obs=fast_obs)
    obs_space, preprocess = get_obss_preprocessor(envs[0].observation_space, use_text=False)
    model = ACModel(obs_space, envs[0].action_space)
    algo = torch_ac.PPOAlgo(
        envs, model, device, 128, 0.99, 0.001, 0.95, 0.01, 0.5, 0.5, 1, 1e-8, 0.2, 4, 256, preprocess
    )
    exps, _ = algo.collect_experiences()
    algo.update_parameters(exps)
    frames, start = 0, time.perf_counter()
    for _ in range(updates):
        exps, logs = algo.collect_experiences()
        algo.update_parameters(exps)
        frames += logs["num_frames"]
    return frames / (time.perf_counter() - start)


def measure_sb3(procs, updates, device):
    """Stable-Baselines3 PPO with the same conv model, hyper-parameters and fast envs (image only, in-process
    DummyVecEnv: on few cores it beats SubprocVecEnv, see ../shared/MEASURED.md), as its own frame count."""
    try:
        import stable_baselines3 as sb3
        from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
        from stable_baselines3.common.vec_env import DummyVecEnv
    except ImportError:
        return None
    from minigrid.wrappers import ImgObsWrapper
    from torch import nn

    from utils.env import make_env

    class Conv(BaseFeaturesExtractor):  # the starter model's image conv (16-32-64, 2x2 kernels, one max-pool)
        def __init__(self, space):
            super().__init__(space, 64)
            self.net = nn.Sequential(
                nn.Conv2d(3, 16, 2),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 2),
                nn.ReLU(),
                nn.Conv2d(32, 64, 2),
                nn.ReLU(),
                nn.Flatten(),
            )

        def forward(self, x):
            return self.net(x)

    venv = DummyVecEnv([lambda i=i: ImgObsWrapper(make_env(ENV_ID, seed=10_000 * i)) for i in range(procs)])
    model = sb3.PPO(
        "CnnPolicy",
        venv,
        n_steps=128,
        batch_size=256,
        n_epochs=4,
        learning_rate=1e-3,
        gamma=0.99,
        gae_lambda=0.95,
        ent_coef=0.01,
        vf_coef=0.5,
        max_grad_norm=0.5,
        clip_range=0.2,
        device=device,
        seed=0,
        policy_kwargs=dict(
            features_extractor_class=Conv,
            normalize_images=False,
            net_arch=dict(pi=[64], vf=[64]),
            activation_fn=nn.Tanh,
        ),
    )
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(None, []))  # its default logger makes a folder in /tmp at every learn()
    frames_per_update = 128 * procs
    model.learn(frames_per_update)  # warm-up
    start = time.perf_counter()
    model.learn(frames_per_update * updates, reset_num_timesteps=False)
    fps = frames_per_update * updates / (time.perf_counter() - start)
    venv.close()
    return fps


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.throughput",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="fewer updates (noisier)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--procs", type=int, default=16, help="environments")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="torch_rl env worker processes (default: as torch_rl.vec_env.default_num_workers)",
    )
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds; each contender keeps its best")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, for every contender (as scripts.train)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is available", file=sys.stderr)
        sys.exit(2)
    updates = 3 if args.quick else 6
    env_steps = 300 if args.quick else 1000
    rounds = 1 if args.quick else args.rounds
    print(
        f"# {ENV_ID}, {args.procs} envs, device {args.device}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"torch threads {torch.get_num_threads()}",
        flush=True,
    )

    # The contenders run in interleaved rounds and each keeps its best round: on a shared machine the speed of
    # the whole box drifts by tens of percent over minutes, which would otherwise land on whoever ran then.
    contenders = {
        "one plain Minigrid env, random actions ": lambda: measure_single_env(env_steps * 4),
        "env limit, plain Minigrid envs         ": lambda: measure_env_limit(
            args.procs, env_steps, args.workers, fast_obs=False
        ),
        "env limit, envs as training steps them ": lambda: measure_env_limit(args.procs, env_steps, args.workers),
        "torch_rl PPO                           ": lambda: measure_torch_rl(
            "ppo", args.procs, updates, args.device, args.workers
        ),
        "torch_rl A2C                           ": lambda: measure_torch_rl(
            "a2c", args.procs, updates * 25, args.device, args.workers
        )[0],
    }
    try:
        import torch_ac  # noqa: F401

        contenders["torch-ac 1.4.0 PPO, plain Minigrid envs"] = lambda: measure_torch_ac(
            args.procs, updates, args.device
        )
        contenders["torch-ac 1.4.0 PPO, same envs as ours  "] = lambda: measure_torch_ac(
            args.procs, updates, args.device, fast_obs=True
        )
    except ImportError:
        print("torch-ac is not installed (pip install -e '.[bench]'): it is not measured")
    try:
        import stable_baselines3  # noqa: F401

        contenders["Stable-Baselines3 PPO, same envs as ours"] = lambda: measure_sb3(args.procs, updates, args.device)
    except ImportError:
        print("stable-baselines3 is not installed (pip install -e '.[bench]'): it is not measured")
    best, rss = {}, None
    for round_ in range(rounds):
        for name, measure in contenders.items():
            value = measure()
            if isinstance(value, tuple):  # torch_rl PPO also reports its memory
                value, rss = value[0], value[1:]
            best[name] = max(best.get(name, 0.0), value)
            unit = "steps/s" if "env" in name and "PPO" not in name else "FPS"
            print(f"round {round_ + 1}/{rounds} {name}: {value:8.0f} {unit}", flush=True)
    print()
    for name, value in best.items():
        unit = "steps/s" if "env" in name and "PPO" not in name else "FPS"
        print(f"{name}: {value:8.0f} {unit} (best of {rounds})")
    print(
        f"torch_rl PPO RSS over {updates} updates  : {rss[0]:.0f} -> {rss[1]:.0f} MB; peak RSS of this process "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    names = list(best)
    ppo, a2c, raw_limit, limit = best[names[3]], best[names[4]], best[names[1]], best[names[2]]
    ratios = []
    torch_ac, torch_ac_same = (
        best.get("torch-ac 1.4.0 PPO, plain Minigrid envs"),
        best.get("torch-ac 1.4.0 PPO, same envs as ours  "),
    )
    if torch_ac:
        ratios.append(f"torch_rl/torch-ac {ppo / torch_ac:.2f}x (same envs {ppo / torch_ac_same:.2f}x)")
    if best.get("Stable-Baselines3 PPO, same envs as ours"):
        ratios.append(f"torch_rl/SB3 {ppo / best['Stable-Baselines3 PPO, same envs as ours']:.2f}x")
    ratios += [
        f"torch_rl/env-limit {ppo / limit:.2f}",
        f"torch_rl/plain-Minigrid-limit {ppo / raw_limit:.2f}",
        f"A2C/env-limit {a2c / limit:.2f}",
    ]
    print(" | ".join(ratios))


if __name__ == "__main__":
    main()
