"""The flags of scripts.train: their definitions, grouped as --help shows them, the defaults that depend on other
flags, and the checks that argparse's types cannot make alone (flags against each other, the env, the device)."""

import argparse

from utils.device import check_device
from utils.env import OBS_WRAPPERS, check_batched_obs, check_env_id
from utils.errors import (
    MAX_ENV_TIMEOUT,
    MAX_THREADS,
    MAX_WORKERS,
    SEED,
    ArgumentParser,
    HelpFormatter,
    UsageError,
    check_flag_value,
    check_procs_fit_in_memory,
    integer,
    number,
)
from utils.evaluation import EVAL_ENVS
from utils.format import IMAGE_ENCODINGS, OBS_VARIANTS, RGB_OBS
from utils.recipes import EXPLORE_CHOICES, LR_SCHEDULE_CHOICES, apply_recipe
from utils.storage import default_model_name

DEFAULT_FRAMES_PER_PROC = {"a2c": 5, "ppo": 128}
MAX_EVAL_EPISODES = 10**6
# Upper bounds of the numeric flags: far beyond any setting that trains, and below the values that overflow inside
# torch (--lr 1e39 overflows Adam's float32 step, --clip-eps 1e308 the clamp of the ratio) or that only drown the
# other terms of the loss, so that a typo is one line before anything runs.
MAX_FRAMES = 10**13  # frames in total: days of the fastest batched GPU envs
MAX_LR = 1.0  # Adam's and RMSprop's step size: a step of 1 per parameter and update already diverges
MAX_LOSS_COEF = 100.0  # a loss or reward term weighed 100 times the policy loss drowns it
MAX_GRAD_NORM = 1e6  # beyond any gradient norm of these models: a larger one only means "no clipping"
MAX_OPTIM_EPS = 1.0  # the optimizers' epsilon: above 1 it, not the gradients, sets the step size
MAX_EPOCHS = 1000  # PPO epochs per update (3-30 in practice)
PPO_FLAGS = ("clip_eps", "epochs", "batch_size", "normalize_advantages")  # what --algo a2c has no use for
A2C_FLAGS = ("optim_alpha",)  # RMSprop's: PPO uses Adam


def parse_args(argv: list[str] | None, description: str | None) -> argparse.Namespace:
    """The flags of ``argv``, with the env's recipe as defaults and the defaults that depend on other flags filled
    in; ``description`` heads --help."""
    args = apply_recipe(build_parser(description), argv)
    if args.frames_per_proc is None:
        args.frames_per_proc = DEFAULT_FRAMES_PER_PROC[args.algo]
    if args.model is None:  # not when given empty: validate refuses --model '' as the other scripts do
        args.model = default_model_name(args.env, args.algo, args.seed)
    args.use_memory = args.recurrence > 1
    args.use_text = args.text
    return args


def build_parser(description: str | None) -> ArgumentParser:
    """scripts.train's parser: the main flags, then the groups model, algorithm and exploration/schedule/evaluation/
    recipes."""
    parser = ArgumentParser(prog="python -m scripts.train", description=description, formatter_class=HelpFormatter)
    add_main_arguments(parser)
    add_model_arguments(parser.add_argument_group("model"))
    add_algorithm_arguments(parser.add_argument_group("algorithm"))
    add_exploration_arguments(parser.add_argument_group("exploration, schedule, evaluation and recipes"))
    return parser


def add_main_arguments(parser):
    parser.add_argument("--algo", required=True, choices=["a2c", "ppo"], help="algorithm")
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. MiniGrid-DoorKey-5x5-v0 or Pendulum-v1")
    parser.add_argument("--model", default=None, help="model folder name (default: ENV_ALGO_seedSEED)")
    parser.add_argument("--seed", type=SEED, default=1, help="random seed, from 0 to 2**32 - 1")
    parser.add_argument(
        "--frames", type=integer(1, MAX_FRAMES), default=10**7, help="train until this many frames in total"
    )
    parser.add_argument(
        "--stop-at-return",
        type=number(),
        default=None,
        metavar="R",
        help="stop early once the mean return per episode, averaged over the last 5 logged updates, "
        "reaches R (e.g. 0.9 on MiniGrid); with --eval-interval, once an evaluation's mean return reaches R",
    )
    parser.add_argument("--procs", type=integer(1), default=16, help="number of environments stepped in parallel")
    parser.add_argument(
        "--workers",
        type=integer(0, MAX_WORKERS),
        default=None,
        help="worker processes stepping the environments (default: none on <= 2 cores, else one per core "
        "but one; 0: step them in this process)",
    )
    parser.add_argument(
        "--batched",
        action="store_true",
        help="step the env as batched torch tensors on --device (the ids listed in docs/batched-envs.md; "
        "torch_rl.envs.BatchedMiniGridEnv) instead of Minigrid's Python envs",
    )
    parser.add_argument(
        "--device",
        default=None,
        help="cpu or cuda (default: cuda with --batched when a GPU is there, else cpu: with envs stepped "
        "by Python the small starter model trains faster on the CPU, see docs/speed.md)",
    )
    parser.add_argument(
        "--threads",
        type=integer(1, MAX_THREADS),
        default=1,
        help="torch CPU threads of the learner; 1 is fastest for the small starter model, whose updates are "
        "too small to gain from sharing them between threads (measurements in docs/speed.md)",
    )
    parser.add_argument(
        "--env-timeout",
        type=number(0, MAX_ENV_TIMEOUT),
        default=300.0,
        metavar="SECONDS",
        help="longest an env's step or reset may take; a longer one stops training with one line naming the "
        "env (exit code 1, the last checkpoint kept); 0: no limit",
    )
    parser.add_argument("--log-interval", type=integer(1), default=1, help="updates between log lines")
    parser.add_argument(
        "--save-interval", type=integer(0), default=10, help="updates between checkpoints (0: only at the end)"
    )
    parser.add_argument("--tb", action="store_true", help="also write TensorBoard logs to the model folder")
    parser.add_argument("--quiet", action="store_true", help="write logs to the model folder only")


def add_model_arguments(group):
    group.add_argument(
        "--obs",
        choices=OBS_VARIANTS,
        default=None,
        help="what a MiniGrid agent sees: partial (its 7x7 view of cell codes), full (the whole grid of cell codes, "
        f"Minigrid's {OBS_WRAPPERS['full']}), rgb (its view as pixels, {OBS_WRAPPERS['rgb']}) or rgb-full (the "
        f"whole grid as pixels, {OBS_WRAPPERS['rgb-full']}); the default model sizes itself to the image. "
        "Default: partial; a resumed model keeps its own, and evaluate and visualize read it from the model",
    )
    group.add_argument(
        "--recurrence",
        type=integer(1),
        default=1,
        help="steps of back-propagation through time; >1 gives the model an LSTM memory",
    )
    group.add_argument("--text", action="store_true", help="add a GRU over the mission string (MiniGrid)")
    group.add_argument(
        "--image-encoding",
        choices=("auto", *IMAGE_ENCODINGS),
        default="auto",
        help="MiniGrid images as raw cell codes or one-hot per code (20 channels, so that a key and a "
        "ball differ clearly: memory tasks such as MiniGrid-MemoryS7 need it; slower, see docs/results.md). auto: "
        "onehot with memory (--recurrence > 1), else raw; a resumed model keeps its own",
    )


def add_algorithm_arguments(group):
    group.add_argument(
        "--frames-per-proc", type=integer(1), default=None, help="steps per env and update (default: 128 PPO, 5 A2C)"
    )
    group.add_argument("--discount", type=number(0.0, 1.0), default=0.99, help="discount factor gamma")
    group.add_argument("--lr", type=number(0.0, MAX_LR, low_open=True), default=0.001, help="learning rate")
    group.add_argument("--gae-lambda", type=number(0.0, 1.0), default=0.95, help="lambda of GAE (1 means no GAE)")
    group.add_argument("--entropy-coef", type=number(0.0, MAX_LOSS_COEF), default=0.01, help="entropy bonus weight")
    group.add_argument("--value-loss-coef", type=number(0.0, MAX_LOSS_COEF), default=0.5, help="value loss weight")
    group.add_argument(
        "--max-grad-norm", type=number(0.0, MAX_GRAD_NORM, low_open=True), default=0.5, help="gradient clipping norm"
    )
    group.add_argument(
        "--optim-eps", type=number(0.0, MAX_OPTIM_EPS, low_open=True), default=1e-8, help="Adam / RMSprop epsilon"
    )
    group.add_argument(
        "--optim-alpha", type=number(0.0, 1.0, low_open=True, high_open=True), default=0.99, help="RMSprop alpha (A2C)"
    )
    group.add_argument(
        "--clip-eps",
        type=number(0.0, 1.0, low_open=True),
        default=0.2,
        help="PPO clipping epsilon: the ratio of new to old action probabilities is clipped to [1 - eps, 1 + eps]",
    )
    group.add_argument("--epochs", type=integer(1, MAX_EPOCHS), default=4, help="PPO epochs per update")
    group.add_argument("--batch-size", type=integer(1), default=256, help="PPO mini-batch size in frames")
    group.add_argument("--normalize-advantages", action="store_true", help="PPO: standardise advantages per batch")
    group.add_argument(
        "--normalize",
        choices=["auto", "on", "off"],
        default="auto",
        help="standardise flat observations, scale rewards by the return's std and (PPO) advantages; "
        "auto: on for continuous (Box) actions, the usual levers of continuous control",
    )


def add_exploration_arguments(group):
    group.add_argument(
        "--explore",
        choices=EXPLORE_CHOICES,
        default="none",
        help="an exploration bonus added to the reward: rnd (random network distillation), count (1/sqrt of the "
        "visits of the exact observation), episodic (count, paid on a first visit in the episode only), noveld "
        "(episodic, paying only what the count bonus grew by from one observation to the next) or both (rnd + count)",
    )
    group.add_argument(
        "--explore-coef",
        type=number(0.0, MAX_LOSS_COEF),
        default=0.01,
        help="weight of the exploration bonus in the reward",
    )
    group.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULE_CHOICES,
        default="constant",
        help="linear: the learning rate falls from --lr to 0 at --frames",
    )
    group.add_argument(
        "--eval-interval",
        type=integer(0),
        default=0,
        metavar="N",
        help="every N updates, run --eval-episodes episodes of the current policy on envs of their own, log their "
        "return, success rate and length, and keep the best model as status_best.pt (0: no evaluation)",
    )
    group.add_argument(
        "--eval-episodes", type=integer(1, MAX_EVAL_EPISODES), default=20, metavar="K", help="episodes per evaluation"
    )
    group.add_argument(
        "--eval-env",
        choices=EVAL_ENVS,
        default="same",
        help="evaluate on the training backend (same: the batched env with --batched) or on Minigrid's own envs",
    )
    group.add_argument(
        "--no-recipe",
        action="store_true",
        help="ignore the env's recipe (recipes/ALGO.toml: tuned flags by env id, used for a known id unless a "
        "flag is given on the command line)",
    )


def validate(args: argparse.Namespace) -> None:
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
    for flag in PPO_FLAGS if args.algo == "a2c" else A2C_FLAGS:
        if flag in given:  # a recipe's value is not refused: a recipe serves both algorithms
            name, other = f"--{flag.replace('_', '-')}", "ppo" if args.algo == "a2c" else "a2c"
            raise UsageError(
                f"{name} is used by --algo {other} only, and --algo {args.algo} would ignore it: drop {name}, "
                f"or train with --algo {other}"
            )
    if "explore_coef" in given and args.explore == "none":
        raise UsageError("--explore-coef weighs an exploration bonus: add --explore, or drop it")
    for flag in ("eval_episodes", "eval_env"):
        if flag in given and args.eval_interval == 0:
            raise UsageError(
                f"--{flag.replace('_', '-')} sets up evaluations during training: add --eval-interval N, or drop it"
            )
    check_obs(args)
    check_procs_fit_in_memory(args.procs, args.frames_per_proc)
    if args.device is not None:
        check_device(args.device)
    check_env_id(args.env)


def check_obs(args: argparse.Namespace) -> None:
    """Checks --obs against the flags it cannot go with (nothing to check while it is None: a resumed model's own
    is checked once read). A recipe's --batched is dropped for a variant the batched env does not step: the recipe
    chose it for speed, and its other settings still fit."""
    if args.obs is None or args.obs == "partial":
        return
    given = getattr(args, "given", ())
    if args.batched:
        if "batched" in given:
            check_batched_obs(args.obs, "drop --batched to train on Minigrid's envs")
        args.batched = False
    if args.obs in RGB_OBS and args.image_encoding == "onehot":
        raise UsageError(
            f"--image-encoding onehot encodes Minigrid's cell codes, and --obs {args.obs} gives pixels: "
            "drop --image-encoding onehot (or train with --obs partial or full)"
        )


def check_flag_values(values: dict, where: str, advice: str = "") -> dict:
    """``values`` ({dest: value}, flags of scripts.train that did not come from its command line: a recipe, the
    flags saved with a model) checked by the flags' own declarations, as the command line checks them; a UsageError
    ``{where}: {key} must be ..., got ...{advice}`` for the first that is not valid (``advice`` may name the flag as
    ``{flag}``)."""
    actions = {action.dest: action for action in build_parser(None)._actions}
    checked = {}
    for key, value in values.items():
        try:
            checked[key] = check_flag_value(actions[key], value)
        except ValueError as error:
            raise UsageError(f"{where}: {key} {error}{advice.format(flag='--' + key.replace('_', '-'))}") from None
    return checked
