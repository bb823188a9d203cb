"""Train an A2C or PPO agent: python -m scripts.train --algo ppo --env MiniGrid-DoorKey-5x5-v0 --model DoorKey

The model folder (storage/NAME, or $TORCH_RL_STORAGE/NAME) is created, or loaded and resumed where it stopped.
Under torchrun (torchrun --nproc-per-node K -m scripts.train ...) each rank steps --procs envs of its own and
gradients are averaged over ranks; rank 0 logs and saves, frames and FPS count all ranks.
"""

import argparse
import functools
import sys

import gymnasium as gym
import torch

import torch_rl
from model import ACModel
from torch_rl.exploration import make_exploration_bonus
from utils.device import check_device, default_device
from utils.distributed_setup import decided_by_rank0, init_distributed
from utils.env import check_env_id, make_batched_env, make_envs
from utils.errors import (
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
)
from utils.evaluation import EVAL_ENVS, Evaluator, make_eval_env_batch
from utils.format import IMAGE_ENCODINGS, get_obss_preprocessor, has_mission
from utils.recipes import EXPLORE_CHOICES, LR_SCHEDULE_CHOICES, describe, recipe_for
from utils.resume import apply_settings, open_checkpoint, restore_model
from utils.seeding import seed as seed_everything
from utils.storage import default_model_name, get_model_dir
from utils.training import EvaluationDuringTraining, Trainer, env_hung, exit_now

DEFAULT_FRAMES_PER_PROC = {"a2c": 5, "ppo": 128}
MAX_EVAL_EPISODES = 10**6


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
        "reaches R (e.g. 0.9 on MiniGrid); with --eval-interval, once an evaluation's mean return reaches R",
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
        "ball differ clearly: memory tasks such as MiniGrid-MemoryS7 need it; slower, see the README). auto: "
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
    g = p.add_argument_group("exploration, schedule, evaluation and recipes")
    g.add_argument(
        "--explore",
        choices=EXPLORE_CHOICES,
        default="none",
        help="an exploration bonus added to the reward: rnd (random network distillation), count (1/sqrt of the "
        "visits of the exact observation) or both",
    )
    g.add_argument(
        "--explore-coef", type=number(0.0), default=0.01, help="weight of the exploration bonus in the reward"
    )
    g.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULE_CHOICES,
        default="constant",
        help="linear: the learning rate falls from --lr to 0 at --frames",
    )
    g.add_argument(
        "--eval-interval",
        type=integer(0),
        default=0,
        metavar="N",
        help="every N updates, run --eval-episodes episodes of the current policy on envs of their own, log their "
        "return, success rate and length, and keep the best model as status_best.pt (0: no evaluation)",
    )
    g.add_argument(
        "--eval-episodes", type=integer(1, MAX_EVAL_EPISODES), default=20, metavar="K", help="episodes per evaluation"
    )
    g.add_argument(
        "--eval-env",
        choices=EVAL_ENVS,
        default="same",
        help="evaluate on the training backend (same: the batched env with --batched) or on Minigrid's own envs",
    )
    g.add_argument(
        "--no-recipe",
        action="store_true",
        help="ignore the env's recipe (recipes/ALGO.toml: tuned flags by env id, used for a known id unless a "
        "flag is given on the command line)",
    )
    args = apply_recipe(p, argv)
    if args.frames_per_proc is None:
        args.frames_per_proc = DEFAULT_FRAMES_PER_PROC[args.algo]
    args.model = args.model or default_model_name(args.env, args.algo, args.seed)
    args.use_memory = args.recurrence > 1
    args.use_text = args.text
    return args


def apply_recipe(parser, argv):
    """The flags, with the env's recipe (if it has one and --no-recipe is not given) as defaults: a flag given on
    the command line wins. ``args.recipe`` is the recipe applied (None: none), ``args.given`` the flags given."""
    args = parser.parse_args(argv)
    args.given = sorted(given_flags(parser, argv))
    args.recipe = None if args.no_recipe else recipe_for(args.algo, args.env)
    if args.recipe:
        parser.set_defaults(**args.recipe)
        given, recipe = args.given, args.recipe
        args = parser.parse_args(argv)
        args.given, args.recipe = given, recipe
    return args


def given_flags(parser, argv):
    """The names (dests) of the flags given on the command line ``argv``."""
    defaults = {action.dest: action.default for action in parser._actions}
    try:
        for action in parser._actions:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        for action in parser._actions:
            action.default = defaults[action.dest]


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
    given = getattr(args, "given", ())
    if "explore_coef" in given and args.explore == "none":
        raise UsageError("--explore-coef weighs an exploration bonus: add --explore rnd|count|both, or drop it")
    for flag in ("eval_episodes", "eval_env"):
        if flag in given and args.eval_interval == 0:
            raise UsageError(
                f"--{flag.replace('_', '-')} sets up evaluations during training: add --eval-interval N, or drop it"
            )
    check_procs_fit_in_memory(args.procs, args.frames_per_proc)
    if args.device is not None:
        check_device(args.device)
    check_env_id(args.env)


def make_algo(
    args, envs, acmodel, preprocess_obss, device, normalize=False, on_env_timeout=None, world_size=1, bonus=None
):
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
        exploration_bonus=bonus,
        exploration_coef=args.explore_coef,
        lr_schedule=args.lr_schedule,
        total_frames=max(1, args.frames // world_size),  # each rank's share: the schedule counts its own frames
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


def make_bonus(args, obs_space):
    """The exploration bonus of --explore (None for none), sized for the model's input (``obs_space``: as
    get_obss_preprocessor gives it)."""
    if args.explore == "none":
        return None
    shape = obs_space["image"] if "image" in obs_space else (obs_space["flat"],)
    return make_exploration_bonus(args.explore, torch.zeros(1, *shape), seed=args.seed)


def make_evaluation(args, device, rank):
    """--eval-interval's evaluation (rank 0 runs the episodes), or None."""
    if args.eval_interval == 0:
        return None
    evaluator = None
    if rank == 0:
        num_envs = min(args.procs, args.eval_episodes)
        env_batch = make_eval_env_batch(args.env, num_envs, args.batched, args.eval_env, device, args.seed)
        evaluator = Evaluator(env_batch, args.eval_episodes, args.seed)
    stop_at_return = args.stop_at_return
    return EvaluationDuringTraining(evaluator, args.eval_interval, stop_at_return)


def recipe_line(args, kept):
    """The log's line on the recipe and on the settings a resumed model kept."""
    source = f"recipes/{args.algo}.toml"
    if kept:
        settings = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in kept.items() if k != "recipe")
        what = f"the settings it was made with{f' ({settings})' if settings else ''}"
        recipe = f"; its recipe: {describe(args.recipe)}" if args.recipe else ""
        return f"# resuming with {what}{recipe}"
    if args.recipe:
        given = [f"--{flag.replace('_', '-')}" for flag in args.given if flag in args.recipe]
        overridden = f" ({', '.join(given)} given on the command line instead)" if given else ""
        return f"# recipe for {args.env} from {source}: {describe(args.recipe)}{overridden}; --no-recipe turns it off"
    if args.no_recipe and recipe_for(args.algo, args.env):
        return f"# --no-recipe: the recipe for {args.env} in {source} is not used"
    return None


@cli
def main(argv=None):
    args = parse_args(argv)
    validate(args)
    args.device = args.device or default_device(args.batched)
    rank, world_size, dist_device = init_distributed(args.device)
    model_dir = get_model_dir(args.model)
    checkpoint, args.image_encoding, kept = decided_by_rank0(lambda: open_checkpoint(args, model_dir), rank, world_size)
    apply_settings(args, kept)  # on every rank: rank 0 read them from the checkpoint
    if kept:
        validate(args)

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
    acmodel = ACModel(obs_space, action_space, args.use_memory, args.text)
    restore_model(acmodel, preprocess_obss, checkpoint, args)
    on_env_timeout = functools.partial(env_hung, model_dir=model_dir, env_timeout=args.env_timeout)
    bonus = make_bonus(args, obs_space)
    algo = make_algo(args, envs, acmodel, preprocess_obss, device, normalize, on_env_timeout, world_size, bonus)
    trainer = Trainer(algo, preprocess_obss, checkpoint, args, model_dir, rank, world_size)
    try:
        trainer.evaluation = make_evaluation(args, device, rank)
    except BaseException:
        trainer.cleanup.close()
        raise
    if trainer.evaluation is not None:
        trainer.cleanup.callback(trainer.evaluation.close)
    trainer.start(f"device {device}, {args.procs} envs{f' x {world_size} ranks' if world_size > 1 else ''}")
    line = recipe_line(args, kept)
    if line:
        trainer.log.line(line)
    code = trainer.run()
    if world_size > 1:
        exit_now(code)
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
