"""Tune PPO's hyper-parameters for one env with Optuna: python -m scripts.tune --env MiniGrid-DoorKey-8x8-v0 --trials 50

Each trial trains PPO for --frames frames with settings sampled by TPE from the search spaces of the hyper-parameter
table (utils/hyperparams.py), starting from the env's recipe, on the batched env where the id has one. It is
evaluated --evals times on the way; the median pruner stops a trial whose evaluation return lags the median of the
earlier trials at the same frames. The study is a database (storage/STUDY/study.db, or --storage URL shared by
workers on several machines): run the same command again and a stopped study goes on where it stopped.

Writes into the study folder: study.db, trials.csv, history.png and importances.png; prints a table of the trials
and the best settings as a block to paste into recipes/ppo.toml.
"""

import contextlib
import csv
import io
import math
import multiprocessing
import os
import re
import sys
import warnings

from utils.errors import EXIT_FAILED, SEED, ArgumentParser, HelpFormatter, UsageError, cli, integer, one_line
from utils.evaluation import EVAL_ENVS
from utils.hyperparams import BY_NAME, RECIPE_KEYS, searched, suggest
from utils.outputs import check_output_file, write_output_file
from utils.storage import (
    STATUS_FILE,
    check_model_name,
    check_no_linked_folder,
    ensure_writable_dir,
    get_storage_dir,
)

ALGO = "ppo"
STUDY_DB = "study.db"
OUTPUTS = {"trials": "trials.csv", "history": "history.png", "importances": "importances.png"}
# What a study is measured with: a study resumed, or joined by another worker, must use the same.
SETUP_KEYS = ("env", "frames", "procs", "evals", "eval_episodes", "eval_env", "seed", "batched", "no_recipe")
# A killed trial's heartbeat stops; after the grace period the next trial to start marks it failed.
HEARTBEAT_S, GRACE_S = 10, 60


def build_parser():
    parser = ArgumentParser(prog="python -m scripts.tune", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--env", required=True, help="Gymnasium env id, e.g. MiniGrid-DoorKey-8x8-v0")
    parser.add_argument(
        "--study", default=None, help="study folder under storage, and the study's name (default: tune/ENV)"
    )
    parser.add_argument(
        "--trials",
        type=integer(1, 10**6),
        default=50,
        help="finished trials the study should hold (a resumed study runs what it lacks)",
    )
    parser.add_argument(
        "--frames", type=integer(1, BY_NAME["frames"].high), default=300_000, help="frames each trial trains"
    )
    parser.add_argument("--procs", type=integer(1, 4096), default=16, help="envs per trial")
    parser.add_argument(
        "--jobs", type=integer(1, 1024), default=1, help="trials run at once, one process each (at most the cores)"
    )
    parser.add_argument(
        "--storage",
        default=None,
        metavar="URL",
        help="the study's database, e.g. postgresql://user:password@host/db, shared by workers on several "
        "machines (default: sqlite in the study folder)",
    )
    parser.add_argument(
        "--evals",
        type=integer(1, 1000),
        default=5,
        help="evaluations per trial, at even frames: the pruner compares trials at each",
    )
    parser.add_argument("--eval-episodes", type=integer(1, 10**5), default=20, metavar="K", help="episodes each")
    parser.add_argument(
        "--eval-env",
        choices=EVAL_ENVS,
        default="same",
        help="evaluate on the training backend (the batched env where the id has one) or on Minigrid's own envs",
    )
    parser.add_argument(
        "--startup-trials", type=integer(0, 10**6), default=5, help="trials finished before the pruner prunes"
    )
    parser.add_argument("--seed", type=SEED, default=1, help="seed of every trial's training and evaluation")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: as scripts.train)")
    parser.add_argument("--no-recipe", action="store_true", help="start the trials from the defaults, not the recipe")
    return parser


# ----------------------------------------------------------------------------------------------- a trial
def setup_of(args) -> dict:
    from torch_rl.envs import SUPPORTED_ENV_IDS

    setup = {key: getattr(args, key) for key in SETUP_KEYS if key != "batched"}
    setup["batched"] = args.env in SUPPORTED_ENV_IDS
    return setup


def trial_settings(setup, values, device=None):
    """The frozen settings of a trial (utils.settings.resolve_settings, as scripts.train resolves a run): the
    setup's flags, the sampled ``values`` ({hyper-parameter: value}) as if given on the command line, the env's
    recipe for the rest."""
    from utils.resume import new_model_flags
    from utils.settings import resolve_settings

    argv = ["--algo", ALGO, "--env", setup["env"], "--frames", str(setup["frames"]), "--procs", str(setup["procs"])]
    argv += ["--seed", str(setup["seed"]), "--workers", "0", "--model", "tune"]
    argv += ["--batched"] if setup["batched"] else []
    argv += ["--no-recipe"] if setup["no_recipe"] else []
    argv += ["--device", device] if device else []
    for name, value in values.items():
        argv += [BY_NAME[name].flag, repr(value) if isinstance(value, float) else str(value)]
    settings, _, _ = resolve_settings(argv, None, lambda args: (None, new_model_flags(args), {}))
    return settings


def eval_points(frames, evals):
    """The frames at which a trial is evaluated (the last at its budget): the steps the pruner compares."""
    return sorted({math.ceil(frames * i / evals) for i in range(1, evals + 1)})


def train_trial(settings, setup, report):
    """Trains PPO with ``settings``, evaluating at eval_points; ``report(return, frames milestone, frames)`` may
    raise optuna.TrialPruned to stop. Returns the last evaluation's mean return."""
    import gymnasium as gym
    import torch

    from model import ACModel
    from scripts.train import make_algo, make_bonus
    from utils.env import make_batched_env, make_envs
    from utils.evaluation import Evaluator, make_eval_env_batch
    from utils.format import get_obss_preprocessor
    from utils.seeding import seed as seed_everything
    from utils.training import check_finite, update_parameters

    torch.set_num_threads(1)  # one core per trial: --jobs trials share the machine
    seed_everything(settings.seed)
    device = torch.device(settings.device)
    if settings.batched:
        envs = make_batched_env(settings.env, settings.procs, device, seed=settings.seed, layout_seed=settings.seed)
        observation_space, action_space = envs.single_observation_space, envs.single_action_space
    else:
        envs = make_envs(settings.env, settings.procs, seed=settings.seed)
        observation_space, action_space = envs[0].observation_space, envs[0].action_space
    normalize = settings.normalize == "on" or (
        settings.normalize == "auto" and isinstance(action_space, gym.spaces.Box)
    )
    obs_space, preprocess = get_obss_preprocessor(
        observation_space, normalize, use_text=settings.text, image_encoding=settings.image_encoding
    )
    acmodel = ACModel(obs_space, action_space, settings.use_memory, settings.text)
    algo = make_algo(settings, envs, acmodel, preprocess, device, normalize, bonus=make_bonus(settings, obs_space))
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(algo.close)
        num_envs = min(settings.procs, setup["eval_episodes"])
        eval_batch = make_eval_env_batch(
            settings.env, num_envs, settings.batched, setup["eval_env"], device, settings.seed
        )
        evaluator = Evaluator(eval_batch, setup["eval_episodes"], settings.seed)
        cleanup.callback(evaluator.close)
        frames, value = 0, None
        for point in eval_points(setup["frames"], setup["evals"]):
            while frames < point:
                frames += update_parameters(algo)["num_frames"]
                check_finite(acmodel)
            value = evaluator(acmodel, preprocess, device)["return_mean"]
            report(value, point, frames)
    return value


def objective(trial, setup, device):
    import optuna

    values = {param.name: suggest(trial, param) for param in searched(ALGO)}
    settings = trial_settings(setup, values, device)

    def report(value, point, frames):
        trial.set_user_attr("frames", frames)
        trial.report(value, point)
        if trial.should_prune():
            raise optuna.TrialPruned(f"return {value:.3f} at {frames} frames")

    try:
        return train_trial(settings, setup, report)
    except FloatingPointError as error:
        trial.set_user_attr("diverged", one_line(error))
        raise


# ----------------------------------------------------------------------------------------------- the study
def make_pruner(startup_trials):
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=startup_trials, n_warmup_steps=0)


def open_study(url, name, setup, startup_trials, worker=0):
    """The study ``name`` in the database ``url``, created or loaded; a UsageError if it cannot be opened or was
    made with another setup."""
    import optuna

    try:
        storage = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    except Exception as error:  # a bad URL, a missing driver, a database that refuses: all the user's to fix
        raise UsageError(f"cannot open the study {name} in {url} ({one_line(error)[:300]})") from None
    saved = study.user_attrs.get("setup")
    if saved is None:
        study.set_user_attr("setup", setup)
    elif saved != setup:
        differences = "; ".join(
            f"{key} was {saved.get(key)!r}, now {setup[key]!r}" for key in SETUP_KEYS if saved.get(key) != setup[key]
        )
        raise UsageError(
            f"the study {name} was made with another setup ({differences}); pass the same flags to resume it, or "
            "choose a new --study"
        )
    # Seeded by how far the study is: a resumed study, or another worker, does not sample the same settings again.
    study.sampler = optuna.samplers.TPESampler(seed=setup["seed"] + len(study.trials) + 1000 * worker)
    study.pruner = make_pruner(startup_trials)
    return study


def finished(study):
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return study.get_trials(deepcopy=False, states=states)


def run_trials(study, setup, trials, device, callbacks=()):
    """Runs trials until the study (all its workers together) holds ``trials`` finished ones."""
    import optuna

    remaining = trials - len(finished(study))
    if remaining <= 0:
        return
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    stop = optuna.study.MaxTrialsCallback(trials, states=states)
    study.optimize(
        lambda trial: objective(trial, setup, device),
        n_trials=remaining,
        callbacks=[stop, *callbacks],
        catch=(FloatingPointError,),  # a diverged trial is a failed one; the study goes on
    )


def worker(url, name, setup, startup_trials, trials, device, index):
    """A --jobs process: runs trials of the shared study until it holds ``trials``."""
    quiet_optuna()
    try:
        run_trials(open_study(url, name, setup, startup_trials, index), setup, trials, device)
    except (UsageError, OSError) as error:
        print(f"error: worker {index}: {one_line(error)}", file=sys.stderr)
        sys.exit(EXIT_FAILED)


def quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress bar and the table say what the INFO lines do
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


# ----------------------------------------------------------------------------------------------- outputs
def trial_rows(study):
    names = [param.name for param in searched(ALGO)]
    rows = []
    for trial in study.get_trials(deepcopy=False):
        value = "" if trial.value is None else f"{trial.value:.4g}"
        row = {"trial": trial.number, "state": trial.state.name.lower(), "return": value}
        row["frames"] = trial.user_attrs.get("frames", "")
        rows.append(row | {name: _short(trial.params.get(name, "")) for name in names})
    return rows


def _short(value):
    return f"{value:.4g}" if isinstance(value, float) else value


def table(rows):
    if not rows:
        return "no trials"
    widths = {key: max(len(key), *(len(str(row[key])) for row in rows)) for key in rows[0]}
    lines = ["  ".join(key.rjust(width) for key, width in widths.items())]
    lines += ["  ".join(str(row[key]).rjust(width) for key, width in widths.items()) for row in rows]
    return "\n".join(lines)


def csv_bytes(rows):
    text = io.StringIO()
    if rows:
        writer = csv.DictWriter(text, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return text.getvalue().encode()


def plots(study):
    """{output key: PNG bytes} of Optuna's matplotlib plots that the study has trials for."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from optuna.visualization.matplotlib import plot_optimization_history, plot_param_importances

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    made = {}
    for key, plot, needed in (("history", plot_optimization_history, 1), ("importances", plot_param_importances, 2)):
        if len(complete) < needed:
            continue
        axes = plot(study)
        data = io.BytesIO()
        axes.figure.tight_layout()
        axes.figure.savefig(data, format="png", dpi=100)
        plt.close(axes.figure)
        made[key] = data.getvalue()
    return made


def recipe_block(study, setup, name):
    """The best trial's settings as a recipes/ppo.toml entry, headed by how they were measured; None before a
    trial completed."""
    import optuna

    from utils.recipes import check_recipe

    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        return None
    best = max(complete, key=lambda trial: trial.value)
    settings = trial_settings(setup, best.params)
    recipe = {key: getattr(settings, key) for key in RECIPE_KEYS if key != "image_encoding"}
    if settings.recurrence > 1 and settings.image_encoding == "raw":  # not what "auto" gives with memory
        recipe["image_encoding"] = "raw"
    if recipe["explore"] == "none":
        del recipe["explore_coef"]  # a recipe refuses a bonus weight without a bonus
    check_recipe(recipe, "the best settings")
    counts = {
        state: sum(t.state.name == state for t in study.get_trials(deepcopy=False))
        for state in ("COMPLETE", "PRUNED", "FAIL")
    }
    backend = "batched" if setup["batched"] and setup["eval_env"] == "same" else "real"
    lines = [
        f"# python -m scripts.tune, study {name}: trial {best.number}, the best of {counts['COMPLETE']} complete",
        f"# trials ({counts['PRUNED']} pruned, {counts['FAIL']} failed; TPE sampler, median pruner). Mean return",
        f"# {best.value:.3f} over {setup['eval_episodes']} episodes on the {backend} env after "
        f"{best.user_attrs.get('frames', setup['frames']):,} frames",
        f"# ({setup['procs']} envs{', batched' if setup['batched'] else ''}, seed {setup['seed']}): one seed, so "
        "check it on others before relying on it.",
        f'["{setup["env"]}"]',
    ]
    lines += [f"{key} = {toml_value(key, value)}" for key, value in recipe.items()]
    return "\n".join(lines)


def toml_value(key, value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int):
        return f"{value:_}" if key == "frames" else str(value)
    return repr(value)


# ----------------------------------------------------------------------------------------------- main
def study_dir_of(name):
    """storage/NAME, with the checks of a model folder's name (no escaping storage, no links below it); a
    UsageError if it is a model folder."""
    storage = get_storage_dir()
    folder = os.path.join(storage, check_model_name(name, flag="--study"))
    check_no_linked_folder(storage, name, flag="--study")
    if os.path.lexists(os.path.join(folder, STATUS_FILE)):
        raise UsageError(f"{folder} is a model folder; choose another --study")
    return folder


def cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@cli
def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        import optuna  # noqa: F401  (an optional extra: checked before anything is written)
    except ImportError:
        raise UsageError("scripts.tune needs Optuna: pip install 'torch_rl[tune]'") from None
    quiet_optuna()
    if args.jobs > cores():
        raise UsageError(f"--jobs {args.jobs} is more than the {cores()} cores here; lower --jobs")
    from utils.env import check_env_id

    check_env_id(args.env)
    setup = setup_of(args)
    trial_settings(setup, {}, args.device)  # the recipe, the device, the sizes: checked before anything is written
    name = args.study or "tune/" + re.sub(r"[^A-Za-z0-9_.-]", "_", args.env).lstrip(".")
    folder = study_dir_of(name)
    ensure_writable_dir(folder)
    outputs = {key: os.path.join(folder, file) for key, file in OUTPUTS.items()}
    for key, path in outputs.items():
        check_output_file(path, f"the study's {key}")
    url = args.storage or f"sqlite:///{os.path.abspath(os.path.join(folder, STUDY_DB))}"
    study = open_study(url, name, setup, args.startup_trials)

    from tqdm import tqdm

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch threads or locks inherited
    helpers = [
        context.Process(target=worker, args=(url, name, setup, args.startup_trials, args.trials, args.device, index))
        for index in range(1, args.jobs)
    ]
    for process in helpers:
        process.start()
    try:
        with tqdm(
            total=args.trials,
            initial=min(args.trials, len(finished(study))),
            desc="trials",
            unit="trial",
            file=sys.stderr,
        ) as bar:

            def progress(study, trial):
                done = min(args.trials, len(finished(study)))
                bar.update(done - bar.n)
                if trial.state.name == "COMPLETE":  # a pruned trial has a value too, but no best is one
                    bar.set_postfix(best=f"{study.best_value:.3f}")

            run_trials(study, setup, args.trials, args.device, callbacks=[progress])
            for process in helpers:
                process.join()
            bar.update(min(args.trials, len(finished(study))) - bar.n)
    finally:
        for process in helpers:
            if process.is_alive():
                process.terminate()
    failed = [process for process in helpers if process.exitcode]

    rows = trial_rows(study)
    print(table(rows))
    write_output_file(outputs["trials"], "the study's trials", csv_bytes(rows))
    written = [outputs["trials"]]
    for key, data in plots(study).items():
        write_output_file(outputs[key], f"the study's {key}", data)
        written.append(outputs[key])
    print(f"# wrote {', '.join(written)}")
    block = recipe_block(study, setup, name)
    print("# no trial completed yet (all pruned or failed)" if block is None else f"\n{block}")
    if failed:
        print(f"error: {len(failed)} of the --jobs workers failed (see their lines above)", file=sys.stderr)
        sys.exit(EXIT_FAILED)


if __name__ == "__main__":
    main()
