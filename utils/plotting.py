"""Reading training logs (log.csv) and drawing learning curves with matplotlib (Agg: no display needed)."""

import io
import os

import numpy as np

from utils.errors import UsageError
from utils.outputs import write_output_file
from utils.storage import MAX_LOG_BYTES, bounded_lines, open_for_reading, parse_csv_line

# No training logs a value near this (returns, losses, FPS, frame counts); a value beyond it is damage, and left out
# of the plot: 1e308 beside -1e308 overflows matplotlib's axis range (a traceback), and a huge value in a rolling
# sum would swamp the values after it.
MAX_PLOT_VALUE = 1e100


def read_log(path):
    """The columns of a log.csv as float arrays (empty or non-numeric cells are NaN), by header name.

    The file is opened without following a symbolic link and read with bounds (MAX_LOG_BYTES in all, MAX_LOG_LINE
    a line); lines that are not text CSV (binary, overlong) are skipped. Infinite values and values beyond
    MAX_PLOT_VALUE are NaN, counted in the result's ``left_out``."""
    try:
        f = open_for_reading(path)
    except FileNotFoundError:
        raise UsageError(f"no training log {path}: train the model first (python -m scripts.train ...)") from None
    except OSError as error:
        raise UsageError(f"cannot read the training log {path} ({error.strerror})") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size > MAX_LOG_BYTES:
            raise UsageError(
                f"the training log {path} is {size / 2**20:.0f} MiB, more than the {MAX_LOG_BYTES // 2**20} MiB "
                "plot reads; plot a copy holding every n-th row"
            )
        lines = bounded_lines(f)
        first = next(lines, b"")
        if first == b"":
            raise UsageError(f"the training log {path} is empty")
        header = parse_csv_line(first)
        if not header or "frames" not in header:
            raise UsageError(f"the training log {path} has no 'frames' column; is it a torch_rl log.csv?")
        rows = [fields for fields in map(parse_csv_line, lines) if fields is not None and fields != header]
    columns = LogColumns()
    for j, name in enumerate(header):
        values = np.array([_to_float(row[j]) if j < len(row) else np.nan for row in rows], dtype=np.float64)
        absurd = np.isinf(values) | (np.abs(values) > MAX_PLOT_VALUE)
        columns.left_out += int(absurd.sum())
        values[absurd] = np.nan
        columns[name] = values
    return columns


class LogColumns(dict):
    """The columns of a log.csv by header name; ``left_out``: how many values were read as missing for being
    infinite or beyond MAX_PLOT_VALUE."""

    left_out = 0


def _to_float(cell):
    try:
        return float(cell)
    except ValueError:
        return np.nan


def rolling_mean(values, k):
    """The trailing mean over the last ``k`` values (fewer at the start), ignoring NaN; NaN where all are NaN."""
    values = np.asarray(values, dtype=np.float64)
    if k <= 1 or len(values) == 0:
        return values.copy()
    valid = ~np.isnan(values)
    sums = np.cumsum(np.where(valid, values, 0.0))
    counts = np.cumsum(valid)
    sums[k:] = sums[k:] - sums[:-k]
    counts[k:] = counts[k:] - counts[:-k]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def plot_logs(logs, out, smooth=1, title=None, flag="--out"):
    """Draws ``logs`` ({name: read_log(...)}) in two panels, return and FPS against frames, and saves ``out``
    atomically (utils.outputs.write_output_file: never through a link, and a full disk leaves the old file);
    ``flag`` names ``out`` in an error."""

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_return, ax_fps) = plt.subplots(2, 1, figsize=(8, 7), sharex=True)
    for name, columns in logs.items():
        frames = columns["frames"]
        line = None
        if "return_mean" in columns:
            mean = rolling_mean(columns["return_mean"], smooth)
            (line,) = ax_return.plot(frames, mean, label=name)
            if "return_std" in columns and not np.all(np.isnan(columns["return_std"])):
                std = rolling_mean(columns["return_std"], smooth)
                ax_return.fill_between(frames, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
        if "FPS" in columns:
            ax_fps.plot(
                frames,
                rolling_mean(columns["FPS"], smooth),
                label=name,
                color=line.get_color() if line is not None else None,
            )
    smoothed = f" (rolling mean of {smooth} updates)" if smooth > 1 else ""
    ax_return.set_ylabel("return (mean ± std)")
    ax_return.set_title(title or f"return per episode{smoothed}")
    ax_fps.set_ylabel("FPS")
    ax_fps.set_xlabel("frames")
    ax_fps.set_title(f"training speed{smoothed}")
    for ax in (ax_return, ax_fps):
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    fig.tight_layout()
    try:
        image = io.BytesIO()  # drawn in memory: only write_output_file writes the file
        fig.savefig(image, dpi=100, format=os.path.splitext(out)[1].lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    write_output_file(out, flag, image.getvalue())
    return out
