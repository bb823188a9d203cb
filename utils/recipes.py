"""Recipes: tuned hyper-parameters by env id (recipes/ALGO.toml, like rl-zoo3's hyperparams/ppo.yml).

A recipe is a table of scripts.train flags (dashes as underscores) under the env id; ``frames`` is the frame
budget. ``load_recipes`` reads a file and checks every entry, so that a typo in a key or a value out of range
ends in one line naming the file, the env and the key (a UsageError), before anything is trained.
``apply_recipe`` makes an env's recipe the defaults of scripts.train's flags (a flag given on the command line
wins), and ``recipe_line`` says in the training log which recipe was used.
"""

import argparse
import os
import stat
import tomllib

from utils import hyperparams
from utils.errors import UsageError

RECIPES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "recipes")
# The keys a recipe may hold: the hyper-parameters marked so in their table (utils.hyperparams), whose flags'
# declarations check their values, so that a recipe meets the ranges of the command line.
RECIPE_KEYS = hyperparams.RECIPE_KEYS


def recipes_path(algo: str) -> str:
    return os.path.join(RECIPES_DIR, f"{algo}.toml")


def load_recipes(path: str) -> dict[str, dict]:
    """The recipes of the file ``path`` (env id -> {flag: value}), every entry checked; {} if there is no file."""
    try:
        with _open_regular_file(path) as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except OSError as error:
        raise UsageError(f"cannot read the recipes {path} ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise UsageError(
            f"the recipes {path} are not UTF-8 text (byte offset {error.start} is "
            f"{error.object[error.start : error.end]!r}); save the file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"the recipes {path} are not valid TOML ({error})") from None
    recipes = {}
    for env_id, recipe in data.items():
        if not isinstance(recipe, dict):
            raise UsageError(f"the recipes {path}: {env_id!r} is not a table of flags ([{env_id!r}] then key = value)")
        recipes[env_id] = check_recipe(recipe, f"the recipes {path}, [{env_id!r}]")
    return recipes


def _open_regular_file(path):
    """``path`` opened for binary reading, a UsageError unless it is a regular file: opening a FIFO for reading
    blocks until a writer comes (O_NONBLOCK makes the open return, and the check refuses it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"the recipes {path} are not a regular file (a folder, FIFO or device); remove it")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def check_recipe(recipe: dict, where: str) -> dict:
    """``recipe`` with each value checked (a UsageError naming ``where`` and the key otherwise)."""
    from utils.train_args import check_flag_values  # here: utils.train_args imports this module

    unknown = [key for key in recipe if key not in RECIPE_KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}; the keys are {', '.join(RECIPE_KEYS)}")
    checked = check_flag_values(recipe, where)
    if checked.get("explore") == "none" and "explore_coef" in checked:
        raise UsageError(f"{where}: explore_coef is set but explore is 'none'")
    return checked


def recipe_for(algo: str, env_id: str, path: str | None = None) -> dict | None:
    """The recipe of ``env_id`` for ``algo`` (from ``path``, default recipes/ALGO.toml), or None if it has none."""
    return load_recipes(path or recipes_path(algo)).get(env_id)


def describe(recipe: dict) -> str:
    """A recipe on one line, as flags: ``--procs 64 --batched ...``."""
    parts = []
    for key, value in recipe.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            if value:
                parts.append(flag)
        else:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(parts)


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
