"""Train an A2C or PPO agent: python -m scripts.train --algo ppo --env MiniGrid-DoorKey-5x5-v0 --model DoorKey

The model folder (storage/NAME, or $TORCH_RL_STORAGE/NAME) is created, or loaded and resumed where it stopped.
"""
import argparse
import signal
import sys
import time

import numpy as np
import torch

import torch_rl
from model import ACModel
from utils.env import check_env_id, make_batched_env, make_envs
from utils.errors import UsageError, cli
from utils.format import get_obss_preprocessor, has_mission
from utils.seeding import seed as seed_everything
from utils.storage import (CSVLogger, TextLogger, command_line, ensure_writable_dir, get_model_dir, get_status,
                           model_exists, save_config, save_status)

DEFAULT_FRAMES_PER_PROC = {"a2c": 5, "ppo": 128}
ARCHITECTURE_KEYS = ("env", "algo", "use_memory", "use_text")
CSV_FIELDS = ["update", "frames", "FPS", "duration",
              "rreturn_mean", "rreturn_std", "rreturn_min", "rreturn_max",
              "return_mean", "return_std", "return_min", "return_max",
              "num_frames_mean", "num_frames_std", "num_frames_min", "num_frames_max",
              "entropy", "value", "policy_loss", "value_loss", "grad_norm",
              "approx_kl", "clipfrac", "explained_variance"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m scripts.train", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--algo", required=True, choices=["a2c", "ppo"], help="algorithm")
    p.add_argument("--env", required=True, help="Gymnasium env id, e.g. MiniGrid-DoorKey-5x5-v0 or Pendulum-v1")
    p.add_argument("--model", default=None, help="model folder name (default: ENV_ALGO_seedSEED)")
    p.add_argument("--seed", type=int, default=1, help="random seed")
    p.add_argument("--frames", type=int, default=10**7, help="train until this many frames in total")
    p.add_argument("--procs", type=int, default=16, help="number of environments stepped in parallel")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes stepping the environments (default: one per CPU core; 0: in this process)")
    p.add_argument("--batched", action="store_true",
                   help="step the env as batched torch tensors on --device (MiniGrid Empty/DoorKey ids only; "
                        "torch_rl.envs.BatchedMiniGridEnv) instead of Minigrid's Python envs")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads of the learner; 1 is fastest for this small model (measured: a 256-sample "
                        "update took 3.5 ms with 1 thread, 119 ms with 2 on a busy 2-core machine)")
    p.add_argument("--log-interval", type=int, default=1, help="updates between log lines")
    p.add_argument("--save-interval", type=int, default=10, help="updates between checkpoints (0: only at the end)")
    p.add_argument("--tb", action="store_true", help="also write TensorBoard logs to the model folder")
    p.add_argument("--quiet", action="store_true", help="write logs to the model folder only")
    g = p.add_argument_group("model")
    g.add_argument("--recurrence", type=int, default=1,
                   help="steps of back-propagation through time; >1 gives the model an LSTM memory")
    g.add_argument("--text", action="store_true", help="add a GRU over the mission string (MiniGrid)")
    g = p.add_argument_group("algorithm")
    g.add_argument("--frames-per-proc", type=int, default=None, help="steps per env and update (default: 128 PPO, 5 A2C)")
    g.add_argument("--discount", type=float, default=0.99, help="discount factor gamma")
    g.add_argument("--lr", type=float, default=0.001, help="learning rate")
    g.add_argument("--gae-lambda", type=float, default=0.95, help="lambda of GAE (1 means no GAE)")
    g.add_argument("--entropy-coef", type=float, default=0.01, help="entropy bonus weight")
    g.add_argument("--value-loss-coef", type=float, default=0.5, help="value loss weight")
    g.add_argument("--max-grad-norm", type=float, default=0.5, help="gradient clipping norm")
    g.add_argument("--optim-eps", type=float, default=1e-8, help="Adam / RMSprop epsilon")
    g.add_argument("--optim-alpha", type=float, default=0.99, help="RMSprop alpha (A2C)")
    g.add_argument("--clip-eps", type=float, default=0.2, help="PPO clipping epsilon")
    g.add_argument("--epochs", type=int, default=4, help="PPO epochs per update")
    g.add_argument("--batch-size", type=int, default=256, help="PPO mini-batch size in frames")
    g.add_argument("--normalize-advantages", action="store_true", help="PPO: standardise advantages per batch")
    args = p.parse_args(argv)
    args.frames_per_proc = args.frames_per_proc or DEFAULT_FRAMES_PER_PROC[args.algo]
    args.model = args.model or f"{args.env}_{args.algo}_seed{args.seed}"
    args.use_memory = args.recurrence > 1
    args.use_text = args.text
    return args


def validate(args):
    for name in ("procs", "frames_per_proc", "recurrence", "epochs", "batch_size", "log_interval"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if args.frames_per_proc % args.recurrence != 0:
        raise UsageError(f"--recurrence {args.recurrence} must divide --frames-per-proc {args.frames_per_proc}; "
                         "change one of them")
    if args.algo == "ppo" and args.batch_size % args.recurrence != 0:
        raise UsageError(f"--recurrence {args.recurrence} must divide --batch-size {args.batch_size}; "
                         "change one of them")
    check_env_id(args.env)
    if args.device is not None and args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but no CUDA GPU is available; use --device cpu")


def load_or_new_status(args, model_dir):
    if not model_exists(model_dir):
        return {"num_frames": 0, "update": 0, "duration": 0.0}
    status = get_status(model_dir)
    saved = status.get("config", {})
    differences = [f"--{k} was {saved.get(k)!r}, now {getattr(args, k)!r}" for k in ARCHITECTURE_KEYS
                   if saved.get(k) != getattr(args, k)]
    if differences:
        differences = [d.replace("--use_memory", "--recurrence>1").replace("--use_text", "--text") for d in differences]
        raise UsageError(f"the model {args.model} was made with other settings ({'; '.join(differences)}); "
                         f"pass the same flags to resume it, or choose a new --model")
    return status


def make_algo(args, envs, acmodel, preprocess_obss, device):
    common = dict(device=device, num_frames_per_proc=args.frames_per_proc, discount=args.discount, lr=args.lr,
                  gae_lambda=args.gae_lambda, entropy_coef=args.entropy_coef, value_loss_coef=args.value_loss_coef,
                  max_grad_norm=args.max_grad_norm, recurrence=args.recurrence, preprocess_obss=preprocess_obss,
                  num_workers=args.workers)
    if args.algo == "a2c":
        return torch_rl.A2CAlgo(envs, acmodel, rmsprop_alpha=args.optim_alpha, rmsprop_eps=args.optim_eps, **common)
    return torch_rl.PPOAlgo(envs, acmodel, adam_eps=args.optim_eps, clip_eps=args.clip_eps, epochs=args.epochs,
                            batch_size=args.batch_size, normalize_advantages=args.normalize_advantages, **common)


def synthesize(values):
    if len(values) == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    values = np.asarray(values, dtype=np.float64)
    return {"mean": values.mean(), "std": values.std(), "min": values.min(), "max": values.max()}


def log_row(logs, update, num_frames, fps, duration):
    row = {"update": update, "frames": num_frames, "FPS": round(fps, 1), "duration": round(duration, 1)}
    for prefix, key in (("rreturn", "reshaped_return_per_episode"), ("return", "return_per_episode"),
                        ("num_frames", "num_frames_per_episode")):
        for stat, value in synthesize(logs[key]).items():
            row[f"{prefix}_{stat}"] = value
    for key in CSV_FIELDS[16:]:
        row[key] = logs.get(key, "")
    return row


def format_line(row):
    return ("U {update} | F {frames:06} | FPS {FPS:04.0f} | D {duration:.0f} | "
            "rR:μσmM {rreturn_mean:.2f} {rreturn_std:.2f} {rreturn_min:.2f} {rreturn_max:.2f} | "
            "F:μσmM {num_frames_mean:.1f} {num_frames_std:.1f} {num_frames_min:.0f} {num_frames_max:.0f} | "
            "H {entropy:.3f} | V {value:.3f} | pL {policy_loss:.3f} | vL {value_loss:.3f} | ∇ {grad_norm:.3f}"
            ).format(**row)


@cli
def main(argv=None):
    args = parse_args(argv)
    validate(args)
    model_dir = get_model_dir(args.model)
    status = load_or_new_status(args, model_dir)
    ensure_writable_dir(model_dir)

    seed_everything(args.seed + status["update"])
    torch.set_num_threads(args.threads)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))

    env_seed = args.seed + 1000 * status["update"]
    if args.batched:
        envs = make_batched_env(args.env, args.procs, device, seed=env_seed)
        observation_space, action_space = envs.single_observation_space, envs.single_action_space
    else:
        envs = make_envs(args.env, args.procs, seed=env_seed)
        observation_space, action_space = envs[0].observation_space, envs[0].action_space
    if args.text and not has_mission(observation_space):
        raise UsageError(f"--text needs an env with a mission string, and {args.env} has none; drop --text")
    obs_space, preprocess_obss = get_obss_preprocessor(observation_space)
    if "vocab" in status and hasattr(preprocess_obss, "vocab"):
        preprocess_obss.vocab.load_vocab(status["vocab"])
    acmodel = ACModel(obs_space, action_space, args.use_memory, args.text)
    if "model_state" in status:
        acmodel.load_state_dict(status["model_state"])
    algo = make_algo(args, envs, acmodel, preprocess_obss, device)
    if "optimizer_state" in status:
        algo.optimizer.load_state_dict(status["optimizer_state"])

    txt_logger = TextLogger(model_dir, quiet=args.quiet)
    csv_logger = CSVLogger(model_dir, CSV_FIELDS)
    tb_writer = None
    if args.tb:
        from torch.utils.tensorboard import SummaryWriter
        tb_writer = SummaryWriter(model_dir)
    config = {k: v for k, v in vars(args).items()}
    if status["update"] == 0:
        save_config(config, model_dir)
    txt_logger(f"# {command_line()}")
    txt_logger(f"# device {device}, {args.procs} envs, {sum(p.numel() for p in acmodel.parameters())} parameters, "
               f"{'resuming at update ' + str(status['update']) if status['update'] else 'new model'} in {model_dir}")

    def save():
        status.update(model_state=acmodel.state_dict(), optimizer_state=algo.optimizer.state_dict(),
                      config={k: config[k] for k in ARCHITECTURE_KEYS} | {"args": config})
        if hasattr(preprocess_obss, "vocab"):
            status["vocab"] = preprocess_obss.vocab.vocab
        save_status(status, model_dir)

    # SIGTERM (e.g. from a scheduler) stops training like Ctrl-C: the model is saved first.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    start, interval_start, interval_frames = time.time(), time.time(), 0
    duration_before = status["duration"]
    try:
        while status["num_frames"] < args.frames:
            logs = algo.update_parameters()
            status["num_frames"] += logs["num_frames"]
            status["update"] += 1
            interval_frames += logs["num_frames"]
            status["duration"] = duration_before + time.time() - start
            if status["update"] % args.log_interval == 0:
                fps = interval_frames / max(time.time() - interval_start, 1e-9)
                row = log_row(logs, status["update"], status["num_frames"], fps, status["duration"])
                txt_logger(format_line(row))
                csv_logger.write(row)
                if tb_writer is not None:
                    for key, value in row.items():
                        if key not in ("update", "frames") and value != "":
                            tb_writer.add_scalar(key, value, status["num_frames"])
                interval_start, interval_frames = time.time(), 0
            if args.save_interval > 0 and status["update"] % args.save_interval == 0:
                save()
        save()
        txt_logger(f"# done: {status['num_frames']} frames, {status['update']} updates, model saved in {model_dir}")
    except KeyboardInterrupt:
        save()
        txt_logger(f"# interrupted: model saved at update {status['update']}, {status['num_frames']} frames; "
                   "run the same command to resume")
    except FloatingPointError as error:
        print(f"error: training diverged at update {status['update'] + 1}: {error}; the last checkpoint in "
              f"{model_dir} is kept", file=sys.stderr)
        sys.exit(1)
    except torch_rl.EnvWorkerError as error:
        print(f"error: an environment failed: {error}; the last checkpoint in {model_dir} is kept", file=sys.stderr)
        sys.exit(1)
    finally:
        algo.close()
        csv_logger.close()
        if tb_writer is not None:
            tb_writer.close()


if __name__ == "__main__":
    main()
