"""Train an A2C or PPO agent: python -m scripts.train --algo ppo --env MiniGrid-DoorKey-5x5-v0 --model DoorKey

The model folder (storage/NAME, or $TORCH_RL_STORAGE/NAME) is created, or loaded and resumed where it stopped.
Under torchrun (torchrun --nproc-per-node K -m scripts.train ...) each rank steps --procs envs of its own and
gradients are averaged over ranks; rank 0 logs and saves, frames and FPS count all ranks.
"""

import contextlib
import os
import signal
import sys
import time
from collections import deque

import gymnasium as gym
import numpy as np
import torch

import torch_rl
from model import ACModel
from torch_rl.vec_env import report_to_stderr
from utils import checkpoint as checkpoints
from utils.checkpoint import ARCHITECTURE_KEYS
from utils.distributed_setup import (
    broadcast_object,
    gather_lists,
    init_distributed,
    parameters_agree,
    shutdown_distributed,
)
from utils.env import check_env_id, make_batched_env, make_envs
from utils.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    MAX_ENV_TIMEOUT,
    MAX_THREADS,
    MAX_WORKERS,
    SEED,
    ArgumentParser,
    HelpFormatter,
    UsageError,
    check_procs_fit_in_memory,
    cli,
    integer,
    number,
    one_line,
)
from utils.format import IMAGE_ENCODINGS, get_obss_preprocessor, has_mission
from utils.interrupts import interrupts_deferred
from utils.seeding import seed as seed_everything
from utils.storage import (
    CSVLogger,
    ModelLock,
    TextLogger,
    WriteError,
    check_model_folder,
    check_writable_dir,
    command_line,
    default_model_name,
    ensure_writable_dir,
    get_model_dir,
    remove_temp_files,
    save_config,
    trim_csv_log,
)

DEFAULT_FRAMES_PER_PROC = {"a2c": 5, "ppo": 128}
CSV_FIELDS = [
    "update",
    "frames",
    "FPS",
    "duration",
    "rreturn_mean",
    "rreturn_std",
    "rreturn_min",
    "rreturn_max",
    "return_mean",
    "return_std",
    "return_min",
    "return_max",
    "num_frames_mean",
    "num_frames_std",
    "num_frames_min",
    "num_frames_max",
    "entropy",
    "value",
    "policy_loss",
    "value_loss",
    "grad_norm",
    "approx_kl",
    "clipfrac",
    "explained_variance",
]


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m scripts.train", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--algo", required=True, choices=["a2c", "ppo"], help="algorithm")
    p.add_argument("--env", required=True, help="Gymnasium env id, e.g. MiniGrid-DoorKey-5x5-v0 or Pendulum-v1")
    p.add_argument("--model", default=None, help="model folder name (default: ENV_ALGO_seedSEED)")
    p.add_argument("--seed", type=SEED, default=1, help="random seed, from 0 to 2**32 - 1")
    p.add_argument("--frames", type=integer(1), default=10**7, help="train until this many frames in total")
    p.add_argument(
        "--stop-at-return",
        type=number(),
        default=None,
        metavar="R",
        help="stop early once the mean return per episode, averaged over the last 5 logged updates, "
        "reaches R (e.g. 0.9 on MiniGrid)",
    )
    p.add_argument("--procs", type=integer(1), default=16, help="number of environments stepped in parallel")
    p.add_argument(
        "--workers",
        type=integer(0, MAX_WORKERS),
        default=None,
        help="worker processes stepping the environments (default: none on <= 2 cores, else one per core "
        "but one; 0: step them in this process)",
    )
    p.add_argument(
        "--batched",
        action="store_true",
        help="step the env as batched torch tensors on --device (the MiniGrid ids listed in the README; "
        "torch_rl.envs.BatchedMiniGridEnv) instead of Minigrid's Python envs",
    )
    p.add_argument(
        "--device",
        default=None,
        help="cpu or cuda (default: cuda with --batched when a GPU is there, else cpu: with envs stepped "
        "by Python the small starter model trains faster on the CPU, see the README's throughput table)",
    )
    p.add_argument(
        "--threads",
        type=integer(1, MAX_THREADS),
        default=1,
        help="torch CPU threads of the learner; 1 is fastest for the small starter model, whose updates are "
        "too small to gain from sharing them between threads (measurements in the README's Speed section)",
    )
    p.add_argument(
        "--env-timeout",
        type=number(0, MAX_ENV_TIMEOUT),
        default=300.0,
        metavar="SECONDS",
        help="longest an env's step or reset may take; a longer one stops training with one line naming the "
        "env (exit code 1, the last checkpoint kept); 0: no limit",
    )
    p.add_argument("--log-interval", type=integer(1), default=1, help="updates between log lines")
    p.add_argument(
        "--save-interval", type=integer(0), default=10, help="updates between checkpoints (0: only at the end)"
    )
    p.add_argument("--tb", action="store_true", help="also write TensorBoard logs to the model folder")
    p.add_argument("--quiet", action="store_true", help="write logs to the model folder only")
    g = p.add_argument_group("model")
    g.add_argument(
        "--recurrence",
        type=integer(1),
        default=1,
        help="steps of back-propagation through time; >1 gives the model an LSTM memory",
    )
    g.add_argument("--text", action="store_true", help="add a GRU over the mission string (MiniGrid)")
    g.add_argument(
        "--image-encoding",
        choices=("auto", *IMAGE_ENCODINGS),
        default="auto",
        help="MiniGrid images as raw cell codes or one-hot per code (20 channels, so that a key and a "
        "ball differ clearly: memory tasks such as MiniGrid-MemoryS7 need it; ~8%% slower). auto: "
        "onehot with memory (--recurrence > 1), else raw; a resumed model keeps its own",
    )
    g = p.add_argument_group("algorithm")
    g.add_argument(
        "--frames-per-proc", type=integer(1), default=None, help="steps per env and update (default: 128 PPO, 5 A2C)"
    )
    g.add_argument("--discount", type=number(0.0, 1.0), default=0.99, help="discount factor gamma")
    g.add_argument("--lr", type=number(0.0, low_open=True), default=0.001, help="learning rate")
    g.add_argument("--gae-lambda", type=number(0.0, 1.0), default=0.95, help="lambda of GAE (1 means no GAE)")
    g.add_argument("--entropy-coef", type=number(0.0), default=0.01, help="entropy bonus weight")
    g.add_argument("--value-loss-coef", type=number(0.0), default=0.5, help="value loss weight")
    g.add_argument("--max-grad-norm", type=number(0.0, low_open=True), default=0.5, help="gradient clipping norm")
    g.add_argument("--optim-eps", type=number(0.0, low_open=True), default=1e-8, help="Adam / RMSprop epsilon")
    g.add_argument(
        "--optim-alpha", type=number(0.0, 1.0, low_open=True, high_open=True), default=0.99, help="RMSprop alpha (A2C)"
    )
    g.add_argument("--clip-eps", type=number(0.0, low_open=True), default=0.2, help="PPO clipping epsilon")
    g.add_argument("--epochs", type=integer(1), default=4, help="PPO epochs per update")
    g.add_argument("--batch-size", type=integer(1), default=256, help="PPO mini-batch size in frames")
    g.add_argument("--normalize-advantages", action="store_true", help="PPO: standardise advantages per batch")
    g.add_argument(
        "--normalize",
        choices=["auto", "on", "off"],
        default="auto",
        help="standardise flat observations, scale rewards by the return's std and (PPO) advantages; "
        "auto: on for continuous (Box) actions, the usual levers of continuous control",
    )
    args = p.parse_args(argv)
    if args.frames_per_proc is None:
        args.frames_per_proc = DEFAULT_FRAMES_PER_PROC[args.algo]
    args.model = args.model or default_model_name(args.env, args.algo, args.seed)
    args.use_memory = args.recurrence > 1
    args.use_text = args.text
    return args


def validate(args):
    """Checks what parse_args' types cannot check alone (flags against each other, the env, the device, the
    memory); creates nothing."""
    if args.model.strip(". ") == "":
        raise UsageError(f"--model {args.model!r} is not a folder name; choose e.g. --model {args.env}_{args.algo}")
    if args.frames_per_proc % args.recurrence != 0:
        raise UsageError(
            f"--recurrence {args.recurrence} must divide --frames-per-proc {args.frames_per_proc}; change one of them"
        )
    if args.algo == "ppo" and args.batch_size % args.recurrence != 0:
        raise UsageError(
            f"--recurrence {args.recurrence} must divide --batch-size {args.batch_size}; change one of them"
        )
    check_procs_fit_in_memory(args.procs, args.frames_per_proc)
    if args.device is not None:
        check_device(args.device)
    check_env_id(args.env)


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


def load_or_new_checkpoint(args, model_dir):
    """The model's checkpoint, or a new one; resolves ``--image-encoding auto`` (a resumed model keeps its own)."""
    if not checkpoints.exists(model_dir):
        if args.image_encoding == "auto":
            args.image_encoding = "onehot" if args.use_memory else "raw"
        return checkpoints.Checkpoint()
    checkpoint = checkpoints.load(model_dir)
    saved = checkpoint.architecture()
    if args.image_encoding == "auto":
        args.image_encoding = saved["image_encoding"]
    differences = [
        describe_difference(k, saved[k], getattr(args, k)) for k in ARCHITECTURE_KEYS if saved[k] != getattr(args, k)
    ]
    if differences:
        raise UsageError(
            f"the model {args.model} was made with other settings ({'; '.join(differences)}); "
            f"pass the same flags to resume it, or choose a new --model"
        )
    return checkpoint


def load_state(module, state, what, args):
    """Loads a saved state dict, with a usage error naming the checkpoint's field if it does not fit."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
        raise UsageError(
            f"the saved {what} of the model {args.model} do not fit the model these flags build "
            f"({one_line(error)[:300]}); pass the flags it was trained with, or choose a new --model"
        ) from None


def check_finite(module):
    """Raises FloatingPointError if a parameter is NaN or infinite (such a model is never saved)."""
    named = list(module.named_parameters())
    finite = torch.stack([torch.isfinite(p).all() for _, p in named]).tolist()  # one device sync
    bad = [name for (name, _), ok in zip(named, finite, strict=True) if not ok]
    if bad:
        raise FloatingPointError(f"the parameters {', '.join(bad)} are not finite")


def describe_difference(key, saved, now):
    switch = {"use_memory": "memory (--recurrence > 1)", "use_text": "--text"}.get(key)
    if switch is not None:
        return f"{switch} was {on_off(saved)}, now {on_off(now)}"
    return f"--{key.replace('_', '-')} was {saved!r}, now {now!r}"


def on_off(value):
    """A saved switch in words; what is neither True nor False (a checkpoint without it, or a damaged one) is said
    as it is, so that a difference never reads "off, now off"."""
    if value is True or value is False:
        return "on" if value else "off"
    return "not recorded" if value is None else repr(value)


def default_device(batched):
    """cuda only for the batched env: with Python-stepped envs every step round-trips actions and observations
    between host and GPU, and the starter model is too small for the GPU to win that back (the README's "On a GPU
    machine" has the measurements)."""
    return "cuda" if batched and torch.cuda.is_available() else "cpu"


def make_algo(args, envs, acmodel, preprocess_obss, device, normalize=False, on_env_timeout=None):
    if isinstance(envs, list):  # Python envs: stepped with --env-timeout
        envs = torch_rl.ParallelEnv(
            envs, num_workers=args.workers, timeout=args.env_timeout or None, on_timeout=on_env_timeout
        )
    common = dict(
        device=device,
        num_frames_per_proc=args.frames_per_proc,
        discount=args.discount,
        lr=args.lr,
        gae_lambda=args.gae_lambda,
        entropy_coef=args.entropy_coef,
        value_loss_coef=args.value_loss_coef,
        max_grad_norm=args.max_grad_norm,
        recurrence=args.recurrence,
        preprocess_obss=preprocess_obss,
        num_workers=args.workers,
        normalize_rewards=normalize,
    )
    if args.algo == "a2c":
        return torch_rl.A2CAlgo(envs, acmodel, rmsprop_alpha=args.optim_alpha, rmsprop_eps=args.optim_eps, **common)
    return torch_rl.PPOAlgo(
        envs,
        acmodel,
        adam_eps=args.optim_eps,
        clip_eps=args.clip_eps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        normalize_advantages=args.normalize_advantages or normalize,
        **common,
    )


def synthesize(values):
    if len(values) == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    values = np.asarray(values, dtype=np.float64)
    return {"mean": values.mean(), "std": values.std(), "min": values.min(), "max": values.max()}


def log_row(logs, update, num_frames, fps, duration):
    row = {"update": update, "frames": num_frames, "FPS": round(fps, 1), "duration": round(duration, 1)}
    for prefix, key in (
        ("rreturn", "reshaped_return_per_episode"),
        ("return", "return_per_episode"),
        ("num_frames", "num_frames_per_episode"),
    ):
        for stat, value in synthesize(logs[key]).items():
            row[f"{prefix}_{stat}"] = value
    for key in CSV_FIELDS[16:]:
        row[key] = logs.get(key, "")
    return row


def format_line(row):
    return (
        "U {update} | F {frames:06} | FPS {FPS:04.0f} | D {duration:.0f} | "
        "rR:μσmM {rreturn_mean:.2f} {rreturn_std:.2f} {rreturn_min:.2f} {rreturn_max:.2f} | "
        "F:μσmM {num_frames_mean:.1f} {num_frames_std:.1f} {num_frames_min:.0f} {num_frames_max:.0f} | "
        "H {entropy:.3f} | V {value:.3f} | pL {policy_loss:.3f} | vL {value_loss:.3f} | ∇ {grad_norm:.3f}"
    ).format(**row)


@cli
def main(argv=None):
    args = parse_args(argv)
    validate(args)
    args.device = args.device or default_device(args.batched)
    rank, world_size, dist_device = init_distributed(args.device)
    model_dir = get_model_dir(args.model)
    if rank == 0:
        try:
            check_model_folder(model_dir, args.model)  # never write into a folder that is not a model
            checkpoint = load_or_new_checkpoint(args, model_dir)
            check_writable_dir(model_dir)  # creates nothing: a failure below leaves no new folder behind
            loaded = ("ok", checkpoint, args.image_encoding)
        except UsageError as error:
            loaded = ("error", str(error))
    if world_size > 1:  # rank 0 reads the checkpoint (storage need not be shared between machines)
        loaded = broadcast_object(loaded if rank == 0 else None, rank)
    if loaded[0] == "error":
        raise UsageError(loaded[1])
    checkpoint, args.image_encoding = loaded[1], loaded[2]

    seed_everything(args.seed + checkpoint.update + 7919 * rank)
    torch.set_num_threads(args.threads)
    device = dist_device or torch.device(args.device)

    env_seed = args.seed + 1000 * checkpoint.update + 1_000_000 * rank
    if args.batched:
        envs = make_batched_env(args.env, args.procs, device, seed=env_seed)
        observation_space, action_space = envs.single_observation_space, envs.single_action_space
    else:
        envs = make_envs(args.env, args.procs, seed=env_seed)
        observation_space, action_space = envs[0].observation_space, envs[0].action_space
    if args.text and not has_mission(observation_space):
        raise UsageError(f"--text needs an env with a mission string, and {args.env} has none; drop --text")
    continuous = isinstance(action_space, gym.spaces.Box)
    normalize = args.normalize == "on" or (args.normalize == "auto" and continuous)
    obs_space, preprocess_obss = get_obss_preprocessor(
        observation_space, normalize, use_text=args.text, image_encoding=args.image_encoding
    )
    for part, key in checkpoints.PREPROCESSOR_KEYS.items():
        load_state(preprocess_obss, {part: checkpoint.preprocessor_state.get(part)}, key, args)
    acmodel = ACModel(obs_space, action_space, args.use_memory, args.text)
    if checkpoint.model_state is not None:
        load_state(acmodel, checkpoint.model_state, "parameters", args)
    algo = make_algo(
        args, envs, acmodel, preprocess_obss, device, normalize, on_env_timeout=lambda m: env_hung(m, model_dir, args)
    )
    cleanup = contextlib.ExitStack()  # what the run opened, closed however it ends
    cleanup.callback(algo.close)
    try:
        for part, key in checkpoints.ALGO_KEYS.items():
            load_state(algo, {part: checkpoint.algo_state.get(part)}, key, args)
        for group in algo.optimizer.param_groups:  # the saved state carries the old run's settings: flags win
            group["lr"], group["eps"] = args.lr, args.optim_eps
        if world_size > 1:
            torch_rl.distributed.broadcast_parameters(acmodel)
        if rank != 0:  # only rank 0 logs and saves
            run_worker_rank(algo, checkpoint, args, world_size)
            exit_now()

        ensure_writable_dir(model_dir)
        cleanup.callback(ModelLock(model_dir).release)  # a second training of this model stops here
        if checkpoints.changed_since_loaded(checkpoint, model_dir):
            raise UsageError(
                f"the model {args.model} was saved by another run while this one started; run the command again "
                "to resume from its new checkpoint"
            )
        remove_temp_files(model_dir)  # of saves that a crash interrupted
        trim_csv_log(model_dir, checkpoint.update)  # rows logged after the last save, which this run logs again
        txt_logger = cleanup.enter_context(contextlib.closing(TextLogger(model_dir, quiet=args.quiet)))
        csv_logger = cleanup.enter_context(contextlib.closing(CSVLogger(model_dir, CSV_FIELDS)))
        tb_writer = None
        if args.tb:
            from torch.utils.tensorboard import SummaryWriter

            tb_writer = cleanup.enter_context(contextlib.closing(SummaryWriter(model_dir)))
        config = {k: v for k, v in vars(args).items()}
        if checkpoint.update == 0:
            save_config(config, model_dir)
        txt_logger(f"# {command_line()}")
        txt_logger(
            f"# device {device}, {args.procs} envs{f' x {world_size} ranks' if world_size > 1 else ''}, "
            f"{sum(p.numel() for p in acmodel.parameters())} parameters, "
            f"{'resuming at update ' + str(checkpoint.update) if checkpoint.update else 'new model'} in {model_dir}"
        )
    except WriteError as error:
        cleanup.close()
        write_failed(error, model_dir, checkpoint.update if checkpoint.model_state is not None else None)
    except BaseException:
        cleanup.close()
        raise
    saved_update = checkpoint.update if checkpoint.model_state is not None else None

    def save():
        nonlocal saved_update
        check_finite(acmodel)  # a diverged model never replaces the last good checkpoint
        checkpoint.model_state = acmodel.state_dict()
        checkpoint.algo_state = algo.state_dict()
        checkpoint.preprocessor_state = preprocess_obss.state_dict()
        checkpoint.config = checkpoints.make_config(config)
        checkpoints.save(checkpoint, model_dir)
        saved_update = checkpoint.update

    # SIGTERM (e.g. from a scheduler) stops training like Ctrl-C: the model is saved first, and the process exits
    # with code 130.
    handlers_before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in handlers_before:
        signal.signal(signum, stop_training)
    interrupted = False
    start, interval_start, interval_frames = time.time(), time.time(), 0
    recent_returns = deque(maxlen=STOP_WINDOW)
    duration_before = checkpoint.duration
    try:
        while checkpoint.num_frames < args.frames:
            logs = algo.update_parameters()
            # The update's bookkeeping happens whole: an interrupt here waits, so status and logs stay in step.
            with interrupts_deferred():
                check_finite(acmodel)
                checkpoint.num_frames += logs["num_frames"] * world_size
                checkpoint.update += 1
                interval_frames += logs["num_frames"] * world_size
                checkpoint.duration = duration_before + time.time() - start
                if checkpoint.update % args.log_interval == 0:
                    gather_episode_logs(logs, world_size)
                    fps = interval_frames / max(time.time() - interval_start, 1e-9)
                    row = log_row(logs, checkpoint.update, checkpoint.num_frames, fps, checkpoint.duration)
                    txt_logger(format_line(row))
                    csv_logger.write(row)
                    if tb_writer is not None:
                        for key, value in row.items():
                            if key not in ("update", "frames") and value != "":
                                tb_writer.add_scalar(key, value, checkpoint.num_frames)
                    interval_start, interval_frames = time.time(), 0
                    if reached_target(logs, args, recent_returns):
                        txt_logger(
                            f"# mean return over the last {STOP_WINDOW} logs {np.mean(recent_returns):.3f} "
                            f"reached --stop-at-return {args.stop_at_return}"
                        )
                        break
                if args.save_interval > 0 and checkpoint.update % args.save_interval == 0:
                    save()
        save()
        if world_size > 1:
            agree = parameters_agree(acmodel, world_size)
            txt_logger(f"# {world_size} ranks, parameters identical on all ranks: {'yes' if agree else 'NO'}")
        txt_logger(f"# done: {checkpoint.num_frames} frames, {checkpoint.update} updates, model saved in {model_dir}")
    except KeyboardInterrupt:
        # A second Ctrl-C or SIGTERM must not cut this save short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        interrupted = True
        try:
            save()
            txt_logger(
                f"# interrupted: model saved at update {checkpoint.update}, {checkpoint.num_frames} frames; "
                "run the same command to resume"
            )
        except FloatingPointError as error:
            diverged(checkpoint, model_dir, error)
        except WriteError as error:
            write_failed(error, model_dir, saved_update)
    except FloatingPointError as error:
        diverged(checkpoint, model_dir, error)
    except ValueError as error:
        if "invalid values" not in str(error):  # torch.distributions' check of its parameters (NaN, inf)
            raise
        diverged(checkpoint, model_dir, "the model's outputs are not finite (NaN or inf)")
    except WriteError as error:
        write_failed(error, model_dir, saved_update)
    except torch_rl.EnvWorkerError as error:
        print(f"error: an environment failed: {one_line(error)}; {checkpoint_note(model_dir)}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    finally:
        cleanup.close()
        if world_size > 1:
            shutdown_distributed()
        for signum, handler in handlers_before.items():  # main() may be called in-process (tests, notebooks)
            signal.signal(signum, handler)
    if world_size > 1:
        exit_now(EXIT_INTERRUPTED if interrupted else 0)
    if interrupted:
        sys.exit(EXIT_INTERRUPTED)


def write_failed(error, model_dir, saved_update):
    """A write to the model folder failed (disk full, read-only file): one line, exit 1; saves are atomic, so the
    last checkpoint is whole."""
    kept = (
        f"the checkpoint of update {saved_update} in {model_dir} is kept"
        if saved_update is not None
        else "no checkpoint was saved"
    )
    print(f"error: {one_line(error)}; {kept} (free some disk space or make the file writable)", file=sys.stderr)
    sys.exit(1)


def stop_training(signum, frame):
    """Ctrl-C or SIGTERM while training: the first one stops it; the ones after it are ignored, so that they
    cannot cut short the save that follows."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def checkpoint_note(model_dir):
    """What a failed run leaves: the last checkpoint, or none (never claim a checkpoint that does not exist)."""
    if checkpoints.exists(model_dir):
        return f"the last checkpoint in {model_dir} is kept"
    return f"no checkpoint was saved in {model_dir} yet"


def env_hung(message, model_dir, args):
    """--env-timeout fired with in-process envs (called from the watchdog thread, which then exits with code 1)."""
    report_to_stderr(
        f"an environment hung: {message}; {checkpoint_note(model_dir)} (raise --env-timeout, now "
        f"{args.env_timeout:g} s, if its steps are this slow)"
    )


def exit_now(code=0):
    """Ends a torchrun rank once its work is saved and the group is left. Why not a normal exit: now and then
    (about 1 run in 10 here) a C++ destructor at interpreter teardown aborts with "terminate called without an
    active exception", which torchrun reports as a failed job although everything was done."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def diverged(checkpoint, model_dir, error):
    print(
        f"error: training diverged at update {checkpoint.update + 1}: {one_line(error)}; "
        f"{checkpoint_note(model_dir)} (lower --lr, or check the rewards and observations)",
        file=sys.stderr,
    )
    sys.exit(EXIT_FAILED)


EPISODE_LOG_KEYS = ("return_per_episode", "reshaped_return_per_episode", "num_frames_per_episode")


STOP_WINDOW = 5


def reached_target(logs, args, recent):
    """--stop-at-return is reached: the last STOP_WINDOW logged mean returns average at least R (decided on all
    ranks' episodes, so every rank stops at the same update)."""
    returns = logs["return_per_episode"]
    if args.stop_at_return is None or len(returns) == 0:
        return False
    recent.append(float(np.mean(returns)))
    return len(recent) == STOP_WINDOW and float(np.mean(recent)) >= args.stop_at_return


def gather_episode_logs(logs, world_size):
    """Episode statistics of all ranks (called by every rank at the same updates), without the zeros that pad
    them before num_procs episodes have ended (so the log shows nan until an episode ends)."""
    padding = logs.get("num_padding_entries", 0)
    for key in EPISODE_LOG_KEYS:
        logs[key] = gather_lists(logs[key][padding:], world_size)


def run_worker_rank(algo, checkpoint, args, world_size):
    """A rank other than 0: trains in step with rank 0 (same updates, gradients averaged), logs and saves nothing."""
    recent_returns = deque(maxlen=STOP_WINDOW)
    try:
        while checkpoint.num_frames < args.frames:
            logs = algo.update_parameters()
            checkpoint.num_frames += logs["num_frames"] * world_size
            checkpoint.update += 1
            if checkpoint.update % args.log_interval == 0:
                gather_episode_logs(logs, world_size)
                if reached_target(logs, args, recent_returns):
                    break
        parameters_agree(algo.acmodel, world_size)
    except KeyboardInterrupt:
        pass
    finally:
        algo.close()
        shutdown_distributed()


if __name__ == "__main__":
    main()
