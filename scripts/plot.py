"""Plot learning curves: python -m scripts.plot --model DoorKey [OTHER ...] --out curves.png

Reads each model's log.csv (storage/NAME/log.csv, or under $TORCH_RL_STORAGE) and draws two panels against
the frames trained: the return per episode (return_mean, shaded mean ± std) and the FPS, one line per
model. No display is needed (matplotlib's Agg backend).
"""

import os

from utils.errors import ArgumentParser, HelpFormatter, UsageError, cli
from utils.plotting import plot_logs, read_log
from utils.storage import get_model_dir, get_storage_dir


def parse_args(argv=None):
    p = ArgumentParser(prog="python -m scripts.plot", description=__doc__, formatter_class=HelpFormatter)
    p.add_argument("--model", nargs="+", required=True, metavar="NAME", help="model folder name(s)")
    p.add_argument(
        "--out",
        default=None,
        help="PNG (or other matplotlib format) to write (default: plot.png in the storage folder)",
    )
    p.add_argument(
        "--smooth", type=int, default=1, help="rolling mean over this many log rows (default: 1, no smoothing)"
    )
    return p.parse_args(argv)


@cli
def main(argv=None):
    args = parse_args(argv)
    if args.smooth < 1:
        raise UsageError(f"--smooth must be at least 1, got {args.smooth}")
    out = args.out or os.path.join(get_storage_dir(), "plot.png")
    folder = os.path.dirname(os.path.abspath(out))
    if args.out is None:
        os.makedirs(folder, exist_ok=True)
    elif not os.path.isdir(folder):
        raise UsageError(f"cannot write --out {out}: the folder {folder} does not exist")
    logs = {}
    for name in args.model:
        model_dir = get_model_dir(name)
        if not os.path.isdir(model_dir):
            raise UsageError(f"no model folder {model_dir}: check --model {name} (and TORCH_RL_STORAGE)")
        logs[name] = read_log(os.path.join(model_dir, "log.csv"))
    plot_logs(logs, out, smooth=args.smooth)
    rows = ", ".join(f"{name} ({len(columns['frames'])} rows)" for name, columns in logs.items())
    print(f"plotted {rows} to {out}")
    return out


if __name__ == "__main__":
    main()
