"""PPO training speed on batched MiniGrid-DoorKey-8x8 at every batch size: eager and compiled, against rejax + NAVIX.

    python -m benchmarks.training_sweep [--settings 16x128 64x128 ...] [--models mlp conv] [--modes eager compiled]
                                        [--seconds 8] [--peer-python PATH] [--solve] [--device cpu|cuda]

Each row is one setting, envs x steps per env, with 4 epochs x 8 mini-batches per update (PPO's usual split):

- ``mlp``: rejax's default network, separate actor and critic MLPs (64x64, tanh) on the flattened 7x7x3 view;
- ``conv``: the starter files' model (model.py) and preprocessing, as ``scripts.train`` builds them.

The learner uses ``--threads`` torch threads (default: every core, as the peer's XLA does). Each measurement runs
in a process of its own (a fresh torch.compile state, the same start for every contender):
it builds the env and the algorithm, runs one update (the warm-up, which compiles with ``compiled``), then updates
for ``--seconds`` and reports training frames per second. ``start`` is the time to the end of the warm-up update,
compile included (Inductor's on-disk cache makes a second run's shorter; ``--fresh-cache`` measures a cold one).
``ms c/u`` splits an update's time: milliseconds collecting the rollout / updating on it (its epochs of
mini-batches).

The peer is rejax's PPO on NAVIX's DoorKey-8x8 (``benchmarks/peers/rejax_ppo.py``), at the same setting and
network, run with ``--peer-python`` (an interpreter with ``pip install -e ".[peers]"``; default: this one). It is
skipped with one line where jax, navix or rejax are missing.

``--solve`` adds the wall-clock time to solve DoorKey-8x8 (mean training return 0.9, which the batched env, exact,
shares with Minigrid) from one command, start-up and compile included: ``scripts.train`` with its DoorKey-8x8
recipe (recipes/ppo.toml: 16 batched envs and an episodic count bonus), eager and with ``--compile``, against
rejax at the setting that solved it fastest here (``--peer-solve-setting``).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

ENV_ID = "MiniGrid-DoorKey-8x8-v0"
SETTINGS = ("16x128", "64x128", "256x64", "1024x32", "4096x32")
EPOCHS, MINI_BATCHES = 4, 8
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_setting(text: str) -> tuple[int, int]:
    envs, steps = text.lower().split("x")
    return int(envs), int(steps)


# ------------------------------------------------------------------------------------ one measurement, in-process
def mlp_model_and_preprocess(env):
    """rejax's default actor-critic (separate 64x64 tanh MLPs) on the flattened view, and a preprocessing that hands
    it only the image (as rejax's networks see only the observation array)."""
    from torch import nn
    from torch.distributions import Categorical

    import torch_rl
    from torch_rl.dictlist import DictList

    class MLP(nn.Module, torch_rl.ACModel):
        def __init__(self, n_in, n_actions, hidden=64):
            super().__init__()
            self.actor = nn.Sequential(
                nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, n_actions)
            )
            self.critic = nn.Sequential(
                nn.Linear(n_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
            )

        def forward(self, obs):
            x = obs.image.flatten(1)
            return Categorical(logits=self.actor(x), validate_args=False), self.critic(x).squeeze(1)

    def preprocess(obss, device=None):
        return DictList(image=obss["image"].to(device, torch.float32))

    preprocess.accepts_stacked_obs = True
    view = env.single_observation_space["image"].shape
    return MLP(view[0] * view[1] * view[2], env.single_action_space.n), preprocess


def conv_model_and_preprocess(env):
    from model import ACModel
    from utils.format import get_obss_preprocessor

    # as scripts.train makes it without --text: the missions are not tokenised for a model that does not read them
    obs_space, preprocess = get_obss_preprocessor(env.single_observation_space, use_text=False)
    return ACModel(obs_space, env.single_action_space), preprocess


def measure(model_name: str, setting: str, mode: str, seconds: float, device: str, threads: int) -> dict:
    """Training FPS of one (model, setting, mode) in this process, the learner on ``threads`` torch threads."""
    import torch_rl
    from torch_rl.envs.minigrid import BatchedMiniGridEnv

    torch.set_num_threads(threads)
    num_envs, steps = parse_setting(setting)
    compiled = mode == "compiled"
    start = time.perf_counter()
    torch.manual_seed(0)
    env = BatchedMiniGridEnv(ENV_ID, num_envs, device=device, seed=0, compile=compiled)
    make = mlp_model_and_preprocess if model_name == "mlp" else conv_model_and_preprocess
    model, preprocess = make(env)
    algo = torch_rl.PPOAlgo(
        env,
        model,
        device=device,
        num_frames_per_proc=steps,
        epochs=EPOCHS,
        batch_size=num_envs * steps // MINI_BATCHES,
        preprocess_obss=preprocess,
        compile=compiled,
    )
    with algo:
        algo.update_parameters()  # the warm-up: compiles with `compiled`
        _sync(device)
        startup = time.perf_counter() - start
        updates, collecting, updating, begin = 0, 0.0, 0.0, time.perf_counter()
        while updates < 2 or time.perf_counter() - begin < seconds:
            before = time.perf_counter()
            exps, _ = algo.collect_experiences()
            _sync(device)
            collected = time.perf_counter()
            algo.update_parameters(exps)
            _sync(device)
            collecting, updating = collecting + collected - before, updating + time.perf_counter() - collected
            updates += 1
        elapsed = time.perf_counter() - begin
    return {
        "fps": updates * algo.num_frames / elapsed,
        "start_s": startup,
        "compile_s": algo.compile_seconds,
        # per update (one rollout of envs x steps, then its epochs of mini-batches): where the time goes
        "collect_ms": 1000 * collecting / updates,
        "update_ms": 1000 * updating / updates,
    }


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ the sweep
def run_one(model_name, setting, mode, args) -> dict | None:
    command = [sys.executable, "-m", "benchmarks.training_sweep", "--one", model_name, setting, mode]
    command += ["--seconds", str(args.seconds), "--device", args.device, "--threads", str(args.threads)]
    return _json_of(command, args.cache_env)


def run_peer(setting, args, extra=()) -> dict | None:
    num_envs, steps = parse_setting(setting)
    command = [args.peer_python, "-m", "benchmarks.peers.rejax_ppo", "--envs", str(num_envs), "--steps", str(steps)]
    command += ["--epochs", str(EPOCHS), "--minibatches", str(MINI_BATCHES), "--json", *extra]
    if "--frames" not in extra:
        command += ["--frames", str(max(num_envs * steps * 4, int(args.peer_frames)))]
    return _json_of(command, args.cache_env)


def _json_of(command, env) -> dict | None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        last = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or ["no output"]
        print(f"  ({' '.join(command[2:5])} failed: {last[0][:200]})", flush=True)
        return None
    return json.loads(lines[-1])


def peer_available(args) -> bool:
    try:
        probe = subprocess.run(
            [args.peer_python, "-c", "import jax, navix, rejax"], cwd=REPO, capture_output=True, text=True
        )
    except OSError:  # no such interpreter
        probe = None
    if probe is None or probe.returncode != 0:
        print('rejax + NAVIX: skipped (not installed for --peer-python; pip install -e ".[peers]")', flush=True)
        return False
    return True


def sweep(args):
    with_peer = not args.no_peer and peer_available(args)
    rows = []
    head = f"{'setting':>9} {'model':>5} "
    head += " ".join(f"{m + ' FPS':>14} {'start s':>8} {'ms c/u':>11}" for m in args.modes)
    head += f" {'rejax FPS':>10} {'ratio':>6}" if with_peer else ""
    print(f"\n== PPO on batched {ENV_ID}, {EPOCHS} epochs x {MINI_BATCHES} mini-batches, device {args.device} ==")
    print(head, flush=True)
    for setting in args.settings:
        peer = run_peer(setting, args) if with_peer and "mlp" in args.models else None
        for model_name in args.models:
            results = {mode: run_one(model_name, setting, mode, args) for mode in args.modes}
            line = f"{setting:>9} {model_name:>5} "
            line += " ".join(
                f"{r['fps']:>14,.0f} {r['start_s']:>8.1f} {r['collect_ms']:>5.0f}/{r['update_ms']:<5.0f}"
                if r
                else f"{'-':>14} {'-':>8} {'-':>11}"
                for r in results.values()
            )
            best = max((r["fps"] for r in results.values() if r), default=None)
            if with_peer and model_name == "mlp":
                line += f" {peer['fps']:>10,.0f} {best / peer['fps']:>5.2f}x" if peer and best else f" {'-':>10}"
            print(line, flush=True)
            rows.append({"setting": setting, "model": model_name, **results, "peer": peer})
    return rows, with_peer


def solve(args, with_peer):
    """Wall-clock seconds to a mean return of 0.9 on DoorKey-8x8, from one command."""
    print(f"\n== wall-clock to solve {ENV_ID} (mean return 0.9), start-up and compile included ==", flush=True)
    with tempfile.TemporaryDirectory() as storage:
        command = [sys.executable, "-m", "scripts.train", "--algo", "ppo", "--env", ENV_ID, "--model", "solve"]
        command += ["--stop-at-return", "0.9", "--device", args.device]
        for flags in ([], ["--compile"]):
            env = dict(args.cache_env or os.environ, TORCH_RL_STORAGE=os.path.join(storage, str(len(flags))))
            start = time.perf_counter()
            result = subprocess.run(command + flags, cwd=REPO, capture_output=True, text=True, env=env)
            seconds = time.perf_counter() - start
            frames = _frames_reached(os.path.join(env["TORCH_RL_STORAGE"], "solve", "log.csv"))
            solved = result.returncode == 0 and "reached --stop-at-return" in result.stdout
            outcome = "solved" if solved else "NOT solved"
            print(f"torch_rl ({' '.join(command[3:] + flags)}): {outcome} in {seconds:.0f} s, {frames}", flush=True)
    if with_peer:
        peer = run_peer(args.peer_solve_setting, args, ("--solve", "0.9", "--frames", "20000000"))
        if peer:
            print(f"rejax + NAVIX ({args.peer_solve_setting}): {json.dumps(peer)}")


def _frames_reached(log_csv):
    try:
        with open(log_csv) as f:
            last = f.read().strip().splitlines()[-1].split(",")
        return f"{int(float(last[1])):,} frames"
    except (OSError, IndexError, ValueError):
        return "frames unknown"


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.training_sweep",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), help="envs x steps per env, e.g. 16x128")
    p.add_argument("--models", nargs="+", default=["mlp", "conv"], choices=["mlp", "conv"])
    p.add_argument("--modes", nargs="+", default=["eager", "compiled"], choices=["eager", "compiled"])
    p.add_argument("--seconds", type=float, default=8.0, help="measured training time per row, after the warm-up")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="the learner's torch threads (default: every core, as JAX's peer uses them; scripts.train's default is "
        "1, for machines whose cores other work shares); the env steps on one",
    )
    p.add_argument("--peer-python", default=sys.executable, help="interpreter with jax, navix and rejax")
    p.add_argument("--peer-frames", type=float, default=1e6, help="frames of each peer measurement")
    p.add_argument("--no-peer", action="store_true", help="torch_rl only")
    p.add_argument("--fresh-cache", action="store_true", help="an empty Inductor cache: cold-start compile times")
    p.add_argument("--solve", action="store_true", help="also the wall-clock time to solve DoorKey-8x8")
    p.add_argument("--peer-solve-setting", default="64x128", help="rejax's setting for --solve")
    p.add_argument("--one", nargs=3, metavar=("MODEL", "SETTING", "MODE"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(measure(*args.one, args.seconds, args.device, args.threads)))
        return
    with tempfile.TemporaryDirectory() as cache:
        args.cache_env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache) if args.fresh_cache else None
        _, with_peer = sweep(args)
        if args.solve:
            solve(args, with_peer)


if __name__ == "__main__":
    main()
