"""The files the scripts write for the user: evaluate --json, visualize --gif, plot --out (and plot's default
storage/plot.png), export --out (and a --text model's vocabulary beside it).

Each is checked before any work (an evaluation can take hours), and refused with one line if it is, or resolves
to, a file in a model folder (a mistyped ``--json storage/G1/status.pt`` must not replace a trained model), or if
it is something other than a regular file (opening a FIFO with no reader blocks forever). It is then written
whole or not at all: into a temporary file beside it, renamed over it (utils.storage.atomic_write). The rename
replaces a symbolic link at the path instead of writing through it, and a full disk leaves the old file as it was
and no empty one.
"""

import os
import stat

from utils.errors import UsageError
from utils.storage import (
    LOCK_FILE,
    STATUS_FILE,
    WriteError,
    _default_file_mode,
    _is_model_file,
    atomic_write,
    get_storage_dir,
)

# Files that only a model folder holds (training creates train.lock first, so a model not saved yet counts).
MODEL_MARKERS = (STATUS_FILE, "status_best.pt", LOCK_FILE)


def check_output_file(path, flag, model_dirs=()):
    """A UsageError unless ``path`` can be written as an output (``flag``, e.g. "--json", names it in the error);
    ``model_dirs``: the model folders this command reads, refused even before they hold a checkpoint. Creates
    nothing, and opens nothing (so a FIFO cannot block it)."""
    what = f"cannot write {flag} {path}"
    if os.path.isdir(path) or path.endswith(os.sep):
        raise UsageError(f"{what}: it is a folder; give a file name, e.g. {flag} results")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{what}: the folder {folder} does not exist")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
        raise UsageError(f"{what}: it is not a regular file (a FIFO, socket or device); give a file name")
    # The folder the file goes into, and, for a link, the folder of what it points to (the link is replaced, but
    # a link into a model folder is a mistake all the same).
    for candidate in {os.path.realpath(folder), os.path.dirname(os.path.realpath(path))}:
        model_dir = _model_folder(candidate, model_dirs)
        if model_dir is not None:
            raise UsageError(
                f"{what}: {model_dir} is a model folder; evaluate, visualize, plot and export never write into one (a "
                "file there could replace the model or its logs): give a file outside it"
            )
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{what}: permission denied")


def _model_folder(folder, model_dirs):
    """``folder`` if it is a model folder: one of ``model_dirs``, one holding a file that only a model folder
    holds, or a folder under the storage folder holding any file that training writes; else None."""
    if any(os.path.realpath(model_dir) == folder for model_dir in model_dirs):
        return folder
    try:
        entries = os.listdir(folder)
    except OSError:
        return None
    if any(name in entries for name in MODEL_MARKERS):
        return folder
    storage = os.path.realpath(get_storage_dir())
    if folder.startswith(storage + os.sep) and any(_is_model_file(name) for name in entries):
        return folder
    return None


def write_output_file(path, flag, data):
    """Writes ``data`` (bytes) to ``path`` atomically, keeping the permissions of the regular file it replaces;
    a failed write (disk full...) is a UsageError saying that the old file, if any, is unchanged."""
    try:
        st = os.lstat(path)
        existed = stat.S_ISREG(st.st_mode)
    except FileNotFoundError:
        existed = False
    mode = stat.S_IMODE(st.st_mode) if existed else _default_file_mode()
    try:
        atomic_write(path, lambda f: f.write(data), binary=True, mode=mode)
    except WriteError as error:
        cause = error.__cause__
        reason = getattr(cause, "strerror", None) or cause
        kept = f"; {path} is unchanged" if existed else ""
        raise UsageError(f"cannot write {flag} {path} ({reason}){kept}") from None
