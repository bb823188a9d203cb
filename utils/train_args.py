"""The flags of scripts.train: their definitions, grouped as --help shows them, the defaults that depend on other
flags, and the checks that argparse's types cannot make alone (flags against each other, the env, the device).

The hyper-parameters' flags come from their table (utils.hyperparams); the flags here are the run's own (which
env, which model folder, where it runs, how it logs)."""

import argparse

from utils.device import check_device
from utils.env import check_batched_obs, check_env_id
from utils.errors import (
    MAX_THREADS,
    MAX_WORKERS,
    SEED,
    ArgumentParser,
    HelpFormatter,
    UsageError,
    add_env_timeout_argument,
    check_flag_value,
    check_procs_fit_in_memory,
    integer,
    number,
)
from utils.format import RGB_OBS
from utils.hyperparams import ALGOS, BY_NAME, add_flags, only_for
from utils.recipes import apply_recipe
from utils.storage import default_model_name
from utils.tracking import add_wandb_argument

# Which algorithm has no use for which hyper-parameter: for the refusal of a flag the algorithm would ignore.
UNUSED_BY = {algo: only_for(algo) for algo in ALGOS}


def parse_args(argv: list[str] | None, description: str | None) -> argparse.Namespace:
    """The flags of ``argv``, with the env's recipe as defaults and the defaults that depend on other flags filled
    in; ``description`` heads --help."""
    args = apply_recipe(build_parser(description), argv)
    if args.frames_per_proc is None:
        args.frames_per_proc = BY_NAME["frames_per_proc"].default_by_algo[args.algo]
    if args.model is None:  # not when given empty: validate refuses --model '' as the other scripts do
        args.model = default_model_name(args.env, args.algo, args.seed)
    args.batched = batched_for_obs(args)  # a recipe's --batched, given up for --obs
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
    parser.add_argument("--algo", required=True, choices=ALGOS, help="algorithm")
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. MiniGrid-DoorKey-5x5-v0 or Pendulum-v1")
    parser.add_argument("--model", default=None, help="model folder name (default: ENV_ALGO_seedSEED)")
    parser.add_argument("--seed", type=SEED, default=1, help="random seed, from 0 to 2**32 - 1")
    parser.add_argument(
        "--stop-at-return",
        type=number(),
        default=None,
        metavar="R",
        help="stop early once the mean return per episode, averaged over the last 5 logged updates, "
        "reaches R (e.g. 0.9 on MiniGrid); with --eval-interval, once an evaluation's mean return reaches R",
    )
    parser.add_argument(
        "--workers",
        type=integer(0, MAX_WORKERS),
        default=None,
        help="worker processes stepping the environments (default: none on <= 2 cores, else one per core "
        "but one; 0: step them in this process)",
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
    add_env_timeout_argument(parser, "training (the last checkpoint kept)")
    parser.add_argument("--log-interval", type=integer(1), default=1, help="updates between log lines")
    parser.add_argument(
        "--save-interval", type=integer(0), default=10, help="updates between checkpoints (0: only at the end)"
    )
    parser.add_argument("--tb", action="store_true", help="also write TensorBoard logs to the model folder")
    add_wandb_argument(parser, "the run's configuration and every scalar of the TensorBoard log")
    parser.add_argument("--quiet", action="store_true", help="write logs to the model folder only")
    add_flags(parser, "main")


def add_model_arguments(group):
    add_flags(group, "model")


def add_algorithm_arguments(group):
    add_flags(group, "algorithm")


def add_exploration_arguments(group):
    add_flags(group, "exploration")
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
    for flag in UNUSED_BY[args.algo]:
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
    is checked once read); reads ``args``, never changes it. A recipe's --batched is no error: batched_for_obs
    drops it."""
    if args.obs is None or args.obs == "partial":
        return
    if args.batched and "batched" in getattr(args, "given", ()):
        check_batched_obs(args.obs, "drop --batched to train on Minigrid's envs")
    if args.obs in RGB_OBS and args.image_encoding == "onehot":
        raise UsageError(
            f"--image-encoding onehot encodes Minigrid's cell codes, and --obs {args.obs} gives pixels: "
            "drop --image-encoding onehot (or train with --obs partial or full)"
        )


def batched_for_obs(args) -> bool:
    """--batched as --obs leaves it (``args``: a namespace, read only): a recipe's --batched (not given on the
    command line) is dropped for a variant the batched env does not step: the recipe chose it for speed, and its
    other settings still fit. A given one stays, for check_obs to refuse."""
    if args.obs is None or args.obs == "partial" or "batched" in getattr(args, "given", ()):
        return args.batched
    return False


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
