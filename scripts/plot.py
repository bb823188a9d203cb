"""Plot learning curves: python -m scripts.plot --model DoorKey [OTHER ...] --out curves.png

Reads each model's log.csv (storage/NAME/log.csv, or under $TORCH_RL_STORAGE) and draws two panels against
the frames trained: the return per episode (return_mean, shaded mean ± std) and the FPS, one line per
model. No display is needed (matplotlib's Agg backend).
"""

import os

from utils.errors import ArgumentParser, HelpFormatter, UsageError, cli, integer
from utils.outputs import check_output_file
from utils.plotting import MAX_PLOT_VALUE, plot_logs, read_log
from utils.storage import get_model_dir, get_storage_dir

DEFAULT_NAME = "plot.png"
MAX_SMOOTH = 10**6


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m scripts.plot", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", nargs="+", required=True, metavar="NAME", help="model folder name(s)")
    p.add_argument(
        "--out",
        default=None,
        help="image to write, its format given by its extension (.png, .svg, .pdf...; none: .png is added; a "
        "folder: plot.png in it) (default: plot.png in the storage folder)",
    )
    p.add_argument(
        "--smooth",
        type=integer(1, MAX_SMOOTH),
        default=1,
        help="rolling mean over this many log rows (default: 1, no smoothing)",
    )
    return p.parse_args(argv)


def output_path(out, model_dirs=()):
    """The file that --out OUT names: OUT, OUT.png without an extension, OUT/plot.png for a folder; a UsageError
    for a format matplotlib cannot write, or a file that must not be written (utils.outputs). Creates nothing."""
    from matplotlib.backend_bases import FigureCanvasBase

    if os.path.isdir(out) or out.endswith(os.sep):
        out = os.path.join(out, DEFAULT_NAME)
    extension = os.path.splitext(out)[1].lower().lstrip(".")
    if not extension:
        out, extension = out + ".png", "png"
    supported = sorted(FigureCanvasBase.get_supported_filetypes())
    if extension not in supported:
        raise UsageError(f"--out {out}: cannot write .{extension} images; use one of .{', .'.join(supported)}")
    check_output_file(out, "--out", model_dirs)
    return out


def _left_out(columns):
    if not columns.left_out:
        return ""
    return f"; {columns.left_out} infinite values or values beyond ±{MAX_PLOT_VALUE:g} left out as damaged"


@cli
def main(argv=None):
    args = parse_args(argv)
    storage = get_storage_dir()
    if os.path.exists(storage) and not os.path.isdir(storage):
        raise UsageError(
            f"the storage folder {storage} is a file, not a folder: set TORCH_RL_STORAGE to the models' folder"
        )
    model_dirs = {name: get_model_dir(name) for name in args.model}
    if args.out is not None:
        out = output_path(args.out, model_dirs.values())
    else:
        out = os.path.join(storage, DEFAULT_NAME)
        check_output_file(out, "the plot", model_dirs.values())  # a FIFO there would block; a link is replaced
    logs = {}
    for name, model_dir in model_dirs.items():
        if not os.path.isdir(model_dir):
            raise UsageError(f"no model folder {model_dir}: check --model {name} (and TORCH_RL_STORAGE)")
        logs[name] = read_log(os.path.join(model_dir, "log.csv"))
    plot_logs(logs, out, smooth=args.smooth, flag="--out" if args.out is not None else "the plot")
    rows = ", ".join(f"{name} ({len(columns['frames'])} rows{_left_out(columns)})" for name, columns in logs.items())
    print(f"plotted {rows} to {out}")
    return out


if __name__ == "__main__":
    main()
