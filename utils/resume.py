"""Resuming a model: its checkpoint checked against the flags of this run, and saved states loaded into what these
flags build, with a usage error (exit 2) naming what does not fit."""

from utils import checkpoint as checkpoints
from utils.checkpoint import ARCHITECTURE_KEYS
from utils.errors import UsageError, one_line
from utils.format import RGB_OBS
from utils.recipes import RECIPE_KEYS, check_recipe
from utils.storage import check_model_folder, check_writable_dir
from utils.train_args import check_flag_values, check_obs


def open_checkpoint(args, model_dir):
    """The checkpoint to train from, the flags it resolves ({flag: value}: the image encoding, --obs, and --batched,
    which a recipe may give up for --obs) and the settings a resumed model keeps (see keep_settings); a UsageError,
    with nothing created, if the folder is not a model's, the flags do not fit the model, or the folder cannot be
    written."""
    check_model_folder(model_dir, args.model)  # never write into a folder that is not a model
    checkpoint, kept = load_or_new_checkpoint(args, model_dir)
    check_writable_dir(model_dir)  # creates nothing: a failure later leaves no new folder behind
    return checkpoint, {key: getattr(args, key) for key in RESOLVED_FLAGS}, kept


RESOLVED_FLAGS = ("image_encoding", "obs", "batched")


def load_or_new_checkpoint(args, model_dir):
    """(the model's checkpoint, or a new one; the settings it keeps); resolves ``--image-encoding auto`` and an
    absent ``--obs`` (a resumed model keeps its own)."""
    if not checkpoints.exists(model_dir):
        if args.obs is None:
            args.obs = "partial"
        if args.image_encoding == "auto":
            # one-hot encodes cell codes: pixels stay raw
            args.image_encoding = "onehot" if args.use_memory and args.obs not in RGB_OBS else "raw"
        return checkpoints.Checkpoint(), {}
    checkpoint = checkpoints.load(model_dir)
    kept = keep_settings(args, checkpoint.config.get(checkpoints.ARGS, {}), checkpoint.path)
    saved = checkpoint.architecture()
    if args.obs is None:
        args.obs = saved["obs"]
    if args.image_encoding == "auto":
        args.image_encoding = saved["image_encoding"]
    check_obs(args)
    differences = [
        describe_difference(k, saved[k], getattr(args, k)) for k in ARCHITECTURE_KEYS if saved[k] != getattr(args, k)
    ]
    if differences:
        raise UsageError(
            f"the model {args.model} was made with other settings ({'; '.join(differences)}); "
            f"pass the same flags to resume it, or choose a new --model"
        )
    return checkpoint, kept


# What a resumed model keeps of the run that made it, unless given on the command line: what a recipe sets, and
# the evaluation that keeps its best checkpoint. (Its other flags are this run's, as before recipes; the image
# encoding is the architecture's, resolved by load_or_new_checkpoint.)
KEPT_SETTINGS = (
    *(key for key in RECIPE_KEYS if key != "image_encoding"),
    "eval_interval",
    "eval_episodes",
    "eval_env",
)


def keep_settings(args, saved_args, path="status.pt"):
    """Resuming: the settings of KEPT_SETTINGS not given on the command line (``args.given``) take the values the
    model was made with, and the recipe is the one it was made with; returns {flag: value} of what changed.

    The kept values go through the flags' own checks, as if given on the command line: a damaged or edited
    ``path`` (procs -5, lr NaN, 'lots' of frames_per_proc) is a UsageError naming the flag, not a traceback."""
    kept = {}
    given = getattr(args, "given", ())
    for key in KEPT_SETTINGS:
        if key in saved_args and key not in given and getattr(args, key, None) != saved_args[key]:
            kept[key] = saved_args[key]
    where = f"the flags saved in {path}"
    kept = check_flag_values(
        kept, where, advice="; give {flag} on the command line to replace it, or restore the file from a backup"
    )
    if "recipe" in saved_args or kept:
        recipe = saved_args.get("recipe")
        if recipe is not None and not isinstance(recipe, dict):
            raise UsageError(f"{where}: recipe is not a table of flags, got {type(recipe).__name__}")
        kept["recipe"] = None if recipe is None else check_recipe(recipe, f"{where}, recipe")
    apply_settings(args, kept)
    return kept


def apply_settings(args, settings):
    """Sets ``settings`` ({flag: value}) on ``args`` and what follows from them."""
    for key, value in settings.items():
        setattr(args, key, value)
    args.use_memory = args.recurrence > 1
    args.use_text = args.text


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


def load_state(module, state, what, args):
    """Loads a saved state dict, with a usage error naming the checkpoint's field if it does not fit."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as error:
        raise UsageError(
            f"the saved {what} of the model {args.model} do not fit the model these flags build "
            f"({one_line(error)[:300]}); pass the flags it was trained with, or choose a new --model"
        ) from None


def restore_model(acmodel, preprocess_obss, checkpoint, args):
    """Loads the saved parameters and preprocessor state (observation normaliser, vocabulary), if any."""
    for part, key in checkpoints.PREPROCESSOR_KEYS.items():
        load_state(preprocess_obss, {part: checkpoint.preprocessor_state.get(part)}, key, args)
    if checkpoint.model_state is not None:
        load_state(acmodel, checkpoint.model_state, "parameters", args)


def restore_algo(algo, checkpoint, args):
    """Loads what the algorithm saved (optimizer, reward scaler, learning-rate schedule, exploration bonus); the
    learning rate (the schedule's start) and epsilon are this run's."""
    for part, key in checkpoints.ALGO_KEYS.items():
        load_state(algo, {part: checkpoint.algo_state.get(part)}, key, args)
    for group in algo.optimizer.param_groups:  # the saved state carries the old run's settings: flags win
        group["eps"] = args.optim_eps
    # A schedule without a saved position (a model trained before it) starts where the model's updates are.
    unscheduled = algo.lr_scheduler is not None and checkpoint.algo_state.get("lr_scheduler") is None
    algo.set_lr(args.lr, updates_done=checkpoint.update if unscheduled else None)
