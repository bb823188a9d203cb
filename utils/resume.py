"""Resuming a model: its checkpoint checked against the flags of this run, and saved states loaded into what these
flags build, with a usage error (exit 2) naming what does not fit."""

import argparse

from utils import checkpoint as checkpoints
from utils import hyperparams
from utils.checkpoint import ARCHITECTURE_KEYS
from utils.errors import UsageError, one_line
from utils.format import RGB_OBS
from utils.recipes import check_recipe
from utils.storage import check_model_folder, check_writable_dir
from utils.train_args import batched_for_obs, check_flag_values, check_obs

# The flags that opening the model resolves (open_checkpoint returns them as {flag: value}): the image encoding
# (``auto``), --obs (absent: the resumed model's own) and --batched (a recipe's, given up for --obs).
RESOLVED_FLAGS = ("image_encoding", "obs", "batched")


def open_checkpoint(args, model_dir):
    """The checkpoint to train from, the flags it resolves ({flag: value} of RESOLVED_FLAGS) and the settings a
    resumed model keeps (see keep_settings); a UsageError, with nothing created, if the folder is not a model's, the
    flags do not fit the model, or the folder cannot be written. ``args`` is read, never changed:
    utils.settings.resolve_settings merges what this returns."""
    check_model_folder(model_dir, args.model)  # never write into a folder that is not a model
    checkpoint, resolved, kept = load_or_new_checkpoint(args, model_dir)
    check_writable_dir(model_dir)  # creates nothing: a failure later leaves no new folder behind
    return checkpoint, resolved, kept


def load_or_new_checkpoint(args, model_dir):
    """(the model's checkpoint, or a new one; the flags of RESOLVED_FLAGS resolved: ``--image-encoding auto`` and
    an absent ``--obs`` (a resumed model keeps its own), --batched as --obs leaves it; the settings it keeps)."""
    if not checkpoints.exists(model_dir):
        return checkpoints.Checkpoint(), new_model_flags(args), {}
    checkpoint = checkpoints.load(model_dir)
    kept = keep_settings(args, checkpoint.config.get(checkpoints.ARGS, {}), checkpoint.path)
    saved = checkpoint.architecture()
    obs = saved["obs"] if args.obs is None else args.obs
    image_encoding = saved["image_encoding"] if args.image_encoding == "auto" else args.image_encoding
    resumed = argparse.Namespace(**with_settings(args, kept | {"image_encoding": image_encoding, "obs": obs}))
    check_obs(resumed)
    resumed.batched = batched_for_obs(resumed)  # what the run would build
    differences = [
        describe_difference(k, saved[k], getattr(resumed, k))
        for k in ARCHITECTURE_KEYS
        if saved[k] != getattr(resumed, k)
    ]
    if differences:
        raise UsageError(
            f"the model {args.model} was made with other settings ({'; '.join(differences)}); "
            f"pass the same flags to resume it, or choose a new --model"
        )
    return checkpoint, {key: getattr(resumed, key) for key in RESOLVED_FLAGS}, kept


def new_model_flags(args):
    """The flags of RESOLVED_FLAGS for a new model: --obs partial when absent, its image encoding
    (new_image_encoding), and --batched as --obs leaves it."""
    obs = "partial" if args.obs is None else args.obs
    resolved = argparse.Namespace(**(dict(vars(args)) | {"obs": obs}))
    return {"image_encoding": new_image_encoding(resolved), "obs": obs, "batched": batched_for_obs(resolved)}


def new_image_encoding(args):
    """A new model's image encoding: ``auto`` is one-hot with memory, raw without; one-hot encodes cell codes, so
    pixels (an RGB --obs) stay raw."""
    if args.image_encoding != "auto":
        return args.image_encoding
    return "onehot" if args.use_memory and args.obs not in RGB_OBS else "raw"


# What a resumed model keeps of the run that made it, unless given on the command line: the hyper-parameters marked
# so in their table (utils.hyperparams: what a recipe sets, and the evaluation that keeps its best checkpoint). Its
# other flags are this run's, as before recipes; the image encoding is the architecture's, resolved by
# load_or_new_checkpoint.
KEPT_SETTINGS = hyperparams.KEPT_SETTINGS


def keep_settings(args, saved_args, path="status.pt"):
    """Resuming: the settings of KEPT_SETTINGS not given on the command line (``args.given``) take the values the
    model was made with, and the recipe is the one it was made with; returns {flag: value} of what changes (``args``
    itself is left as it is).

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
    return kept


def with_settings(args, settings):
    """{flag: value} of ``args`` (a namespace) with ``settings`` ({flag: value}) in place and what follows from
    them (the switches of the architecture)."""
    merged = dict(vars(args)) | settings
    merged["use_memory"] = merged["recurrence"] > 1
    merged["use_text"] = merged["text"]
    return merged


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
