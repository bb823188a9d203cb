"""Weights & Biases tracking, an optional extra (pip install -e ".[wandb]"): scripts.train --wandb logs the run's
configuration and every scalar its TensorBoard log gets; scripts.visualize --gif NAME --wandb logs the GIF.

Each command is a W&B run of its own, named after the model and grouped under it, so that a resumed training and
the GIFs of a model sit together in the project (job types "train" and "visualize"). W&B's own settings apply:
``WANDB_MODE=offline`` keeps the run on disk for a later ``wandb sync``, ``WANDB_DIR`` says where (default:
./wandb), ``WANDB_ENTITY`` whose project it is.
"""

import json

from utils.errors import UsageError, one_line

DEFAULT_PROJECT = "torch_rl"
WANDB_EXTRA = 'pip install -e ".[wandb]" (or pip install wandb)'


def add_wandb_argument(parser, what):
    """--wandb [PROJECT], ``what``: what the command logs, for its help."""
    parser.add_argument(
        "--wandb",
        nargs="?",
        const=DEFAULT_PROJECT,
        default=None,
        metavar="PROJECT",
        help=f"also log {what} to Weights & Biases, in PROJECT (default: {DEFAULT_PROJECT}); needs the wandb "
        f"extra: {WANDB_EXTRA}",
    )


def require_wandb():
    """The wandb module, or a UsageError saying what to install; called before any work."""
    try:
        import wandb
    except ImportError:
        raise UsageError(f"--wandb needs the wandb package: {WANDB_EXTRA}") from None
    return wandb


def start_run(project, model_name, job_type, config, quiet=False):
    """A W&B run (wandb.init) for the model ``model_name``; a UsageError with W&B's reason if it cannot start (no
    login and no WANDB_MODE=offline, say)."""
    wandb = require_wandb()
    try:
        return wandb.init(
            project=project,
            name=model_name,
            group=model_name,
            job_type=job_type,
            config=json.loads(json.dumps(config, default=str)),  # plain JSON, as config.json holds it
            # The console is not mirrored: log.txt has every line, and wrapping stdout would put W&B between the
            # training and the terminal that Ctrl-C comes from.
            settings=wandb.Settings(console="off", silent=quiet),
        )
    except Exception as error:  # W&B's errors have no common base: a missing login, a refused project...
        raise UsageError(
            f"Weights & Biases could not start a run: {one_line(error)[:300]}; run wandb login, or set "
            "WANDB_MODE=offline to keep the run on disk"
        ) from None


class TrainingTracker:
    """scripts.train's W&B run: the configuration at the start, then each row of the log (the scalars TensorBoard
    gets, against the frames, as TensorBoard plots them)."""

    def __init__(self, project, model_name, config, quiet=False):
        self.run = start_run(project, model_name, "train", config, quiet)
        self.run.define_metric("frames")
        self.run.define_metric("*", step_metric="frames")

    def row(self, row):
        self.run.log({key: float(value) for key, value in row.items() if value != ""})

    def close(self):
        self.run.finish()


def log_gif(project, model_name, config, path, returns, quiet=False):
    """scripts.visualize's W&B run: the GIF at ``path`` (as a video, which W&B plays) and the episodes' returns."""
    wandb = require_wandb()
    run = start_run(project, model_name, "visualize", config, quiet)
    try:
        run.log({"episodes": wandb.Video(path, format="gif"), "return_mean": sum(returns) / len(returns)})
    finally:
        run.finish()
