"""Where models live (storage/NAME, or $TORCH_RL_STORAGE/NAME) and how they are saved, loaded and logged."""

import csv
import glob
import json
import os
import sys
import tempfile

import torch

from utils.errors import UsageError

STATUS_FILE = "status.pt"


def get_storage_dir():
    return os.environ.get("TORCH_RL_STORAGE", "storage")


def get_model_dir(model_name):
    return os.path.join(get_storage_dir(), model_name)


def ensure_writable_dir(path):
    """Creates the folder ``path`` if needed; a UsageError if it cannot be written."""
    check_writable_dir(path)
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        raise _not_writable(path, error) from None


def check_writable_dir(path):
    """A UsageError unless ``path`` is a writable folder or one can be created there; creates nothing."""
    existing = os.path.abspath(path)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    try:
        if not os.path.isdir(existing):
            raise NotADirectoryError(20, "Not a directory", existing)
        probe = tempfile.NamedTemporaryFile(dir=existing, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as error:
        raise _not_writable(path, error) from None


def _not_writable(path, error):
    return UsageError(
        f"cannot write to the model folder {path} ({error.strerror or error}); "
        "choose another --model or set TORCH_RL_STORAGE to a writable folder"
    )


def status_path(model_dir):
    return os.path.join(model_dir, STATUS_FILE)


def model_exists(model_dir):
    return os.path.exists(status_path(model_dir))


def get_status(model_dir, map_location="cpu"):
    """The saved training status (frames, update, model and optimizer state, vocabulary, config)."""
    path = status_path(model_dir)
    if not os.path.exists(path):
        raise UsageError(
            f"no trained model in {model_dir}: train one first with "
            f"python -m scripts.train --model {os.path.basename(model_dir)} --env ..."
        )
    try:
        status = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise UsageError(
            f"the checkpoint {path} is corrupt or truncated ({type(error).__name__}); "
            "restore it from a backup or train under another --model"
        ) from None
    if not isinstance(status, dict) or "model_state" not in status:
        raise UsageError(f"the checkpoint {path} is not a torch_rl model; train under another --model")
    return status


def atomic_write(path, write, binary=False):
    """Writes ``path`` through ``write(file)`` into a temp file beside it, fsyncs, then renames it over ``path``:
    a crash at any moment leaves either the old or the new file, never a torn one."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": ""})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def save_status(status, model_dir):
    """Saves atomically: a temp file then a rename, so that a crash at any moment leaves a loadable checkpoint."""
    path = status_path(model_dir)
    atomic_write(path, lambda f: torch.save(status, f), binary=True)


def remove_temp_files(model_dir):
    """Removes the temp files of saves that a crash (e.g. SIGKILL) interrupted; the checkpoint itself is intact."""
    for pattern in (".tmp-*.tmp", ".status-*.tmp", ".log-*.tmp", ".write-test-*"):
        for path in glob.glob(os.path.join(model_dir, pattern)):
            try:
                os.remove(path)
            except OSError:
                pass


def trim_csv_log(model_dir, last_update):
    """Drops the rows of log.csv after update ``last_update`` (and a half-written last line).

    A crash between logging an update and saving it leaves rows that the resumed run logs again; dropping them
    keeps one row per update. The file is rewritten (atomically) only if there is something to drop.
    """
    path = os.path.join(model_dir, "log.csv")
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        lines = f.read().splitlines(keepends=True)
    if not lines:
        return
    header = next(csv.reader([lines[0]]))
    keep = [lines[0] if lines[0].endswith("\n") else lines[0] + "\n"]
    for line in lines[1:]:
        fields = next(csv.reader([line]), [])
        if not line.endswith("\n") or len(fields) != len(header):
            break  # a line the crash cut off
        try:
            update = int(fields[header.index("update")]) if "update" in header else 0
        except ValueError:
            break
        if update > last_update:
            break
        keep.append(line)
    if keep == lines:
        return
    atomic_write(path, lambda f: f.writelines(keep))


def save_config(config, model_dir):
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


class TextLogger:
    """Prints a line and appends it to log.txt in the model folder."""

    def __init__(self, model_dir, quiet=False):
        self.path = os.path.join(model_dir, "log.txt")
        self.quiet = quiet

    def __call__(self, line):
        if not self.quiet:
            print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


class CSVLogger:
    """Appends rows to log.csv; the header is written once, when the file is new."""

    def __init__(self, model_dir, fieldnames):
        self.path = os.path.join(model_dir, "log.csv")
        self.fieldnames = list(fieldnames)
        new = not os.path.exists(self.path) or os.path.getsize(self.path) == 0
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.fieldnames)
        if new:
            self.writer.writeheader()
            self.file.flush()

    def write(self, row):
        self.writer.writerow(row)
        self.file.flush()

    def close(self):
        self.file.close()


def command_line():
    return "python -m scripts." + os.path.basename(sys.argv[0]).removesuffix(".py") + " " + " ".join(sys.argv[1:])
