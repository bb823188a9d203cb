"""What training writes to its logs: a row per logged update (log.csv, a line of log.txt, TensorBoard), and the
text lines around them. Only rank 0 logs: other ranks get a NullLog, so that the loop runs the same on all."""

import contextlib

import numpy as np

from utils.storage import CSVLogger, TextLogger

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
    "lr",
    # with an exploration bonus (--explore): the bonus per episode (its mean) and per step
    "intrinsic_return_mean",
    "intrinsic_reward_mean",
    # with --eval-interval, on the updates that evaluate
    "eval_return_mean",
    "eval_success_rate",
    "eval_num_frames_mean",
]
EPISODE_STATS = (
    ("rreturn", "reshaped_return_per_episode"),
    ("return", "return_per_episode"),
    ("num_frames", "num_frames_per_episode"),
)
UPDATE_STATS = CSV_FIELDS[16:]  # the algorithm's statistics of the update, as its logs name them (or "")


def synthesize(values):
    if len(values) == 0:
        return {"mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    values = np.asarray(values, dtype=np.float64)
    return {"mean": values.mean(), "std": values.std(), "min": values.min(), "max": values.max()}


def log_row(logs, update, num_frames, fps, duration):
    row = {"update": update, "frames": num_frames, "FPS": round(fps, 1), "duration": round(duration, 1)}
    for prefix, key in EPISODE_STATS:
        for stat, value in synthesize(logs[key]).items():
            row[f"{prefix}_{stat}"] = value
    for key in UPDATE_STATS:
        row[key] = logs.get(key, "")
    if "intrinsic_return_per_episode" in logs:  # the episodes that ended, as the env's returns
        row["intrinsic_return_mean"] = synthesize(logs["intrinsic_return_per_episode"])["mean"]
    return row


def format_line(row):
    return (
        "U {update} | F {frames:06} | FPS {FPS:04.0f} | D {duration:.0f} | "
        "rR:μσmM {rreturn_mean:.2f} {rreturn_std:.2f} {rreturn_min:.2f} {rreturn_max:.2f} | "
        "F:μσmM {num_frames_mean:.1f} {num_frames_std:.1f} {num_frames_min:.0f} {num_frames_max:.0f} | "
        "H {entropy:.3f} | V {value:.3f} | pL {policy_loss:.3f} | vL {value_loss:.3f} | ∇ {grad_norm:.3f}"
        + (" | iR {intrinsic_return_mean:.3f}" if row.get("intrinsic_return_mean", "") != "" else "")
        + (
            " | eval R {eval_return_mean:.3f} S {eval_success_rate:.2f} F {eval_num_frames_mean:.1f}"
            if row.get("eval_return_mean", "") != ""
            else ""
        )
    ).format(**row)


class TrainingLog:
    """Rank 0's logs in the model folder: log.txt (and stdout unless quiet), log.csv and, with ``tensorboard``,
    TensorBoard event files; ``tracker`` (a utils.tracking.TrainingTracker, --wandb) gets each row too. The files
    are closed by ``cleanup`` (a contextlib.ExitStack), as the tracker is by its opener."""

    def __init__(self, model_dir, cleanup, quiet=False, tensorboard=False, tracker=None):
        self.text = cleanup.enter_context(contextlib.closing(TextLogger(model_dir, quiet=quiet)))
        self.csv = cleanup.enter_context(contextlib.closing(CSVLogger(model_dir, CSV_FIELDS)))
        self.tensorboard = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tensorboard = cleanup.enter_context(contextlib.closing(SummaryWriter(model_dir)))
        self.tracker = tracker

    def line(self, text):
        """A line of log.txt (the ones that are not rows start with "#")."""
        self.text(text)

    def row(self, row):
        self.text(format_line(row))
        self.csv.write(row)
        if self.tensorboard is not None:
            for key, value in row.items():
                if key not in ("update", "frames") and value != "":
                    self.tensorboard.add_scalar(key, value, row["frames"])
        if self.tracker is not None:
            self.tracker.row(row)


class NullLog:
    """The logs of a rank other than 0: nothing is written."""

    def line(self, text):
        pass

    def row(self, row):
        pass
