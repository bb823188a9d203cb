"""Model folders (storage/NAME, or $TORCH_RL_STORAGE/NAME): their names, their files, their lock and their logs.

What a folder may hold is checked before anything is written there, its files are opened without following
symbolic links (a link could aim a write, or an endless read, anywhere), and a lock keeps two trainings of one
model apart. What goes inside status.pt is utils/checkpoint.py's business.
"""

import contextlib
import csv
import errno
import fcntl
import fnmatch
import glob
import json
import os
import re
import stat
import sys
import tempfile
import time

from utils.errors import UsageError

STATUS_FILE = "status.pt"
CONFIG_FILE = "config.json"
TEXT_LOG_FILE = "log.txt"
CSV_LOG_FILE = "log.csv"
LOCK_FILE = "train.lock"
# Temp files that an interrupted save or writability probe leaves behind (removed on resume).
TEMP_FILE_PATTERNS = (".tmp-*.tmp", ".write-test-*")
# Everything scripts.train writes into a model folder; a folder holding only these is a model not yet saved.
MODEL_FILE_PATTERNS = (
    STATUS_FILE,
    "status_best.pt",  # the best evaluation's checkpoint (utils.checkpoint.BEST_STATUS_FILE)
    CONFIG_FILE,
    TEXT_LOG_FILE,
    CSV_LOG_FILE,
    LOCK_FILE,
    "events.out.tfevents.*",
    *TEMP_FILE_PATTERNS,
)

MODEL_NAME_PART = re.compile(r"[A-Za-z0-9_.-]+")
MODEL_NAME_EXAMPLE = "DoorKey or doorkey/ppo_seed1"
MAX_LOG_LINE = 128 * 1024  # a log.csv row is ~300 bytes; a longer line is damage, dropped unread
MAX_LOG_BYTES = 256 * 1024**2  # what plot reads of one log.csv (about a million rows)


class WriteError(Exception):
    """Writing a model folder's file failed (disk full, read-only file or folder...)."""

    def __init__(self, path, error):
        super().__init__(f"cannot write {path} ({error.strerror or error})")
        self.path = path


def get_storage_dir():
    """$TORCH_RL_STORAGE, or storage/ if it is not set; a UsageError if it is set but empty, which would put every
    model in the current folder."""
    storage = os.environ.get("TORCH_RL_STORAGE", "storage")
    if storage == "":
        raise UsageError(
            "TORCH_RL_STORAGE is set but empty; set it to the folder that holds the models, or unset it to use storage/"
        )
    return storage


def check_model_name(name, flag="--model"):
    """``name`` if it names a folder under storage (letters, digits, ``-_.``, ``/`` between parts, no ``..``
    part); a UsageError otherwise, so that a model never reaches outside its storage folder. ``flag`` names the
    flag that gave it (scripts.tune's study folders follow the same rules: --study)."""
    parts = name.split("/")
    if not all(MODEL_NAME_PART.fullmatch(part) and part not in (".", "..") for part in parts) or len(name) > 200:
        what = "a model name" if flag == "--model" else "a folder name under storage"
        raise UsageError(
            f"{flag} {name!r} is not {what}: use letters, digits, '-', '_', '.' and '/' between sub-folder "
            f"names, without '..' or a leading '/', e.g. {flag} {MODEL_NAME_EXAMPLE.split(' or ')[1]}"
        )
    return name


def default_model_name(env_id, algo, seed):
    """ENV_ALGO_seedSEED, with the characters a model name cannot hold (e.g. the ':' of module:EnvId) as '_'."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{env_id}_{algo}_seed{seed}").lstrip(".") or "model"


def get_model_dir(model_name):
    """storage/NAME; a UsageError if NAME is not a model name or a folder on its way under storage is a link."""
    storage = get_storage_dir()
    model_dir = os.path.join(storage, check_model_name(model_name))
    check_no_linked_folder(storage, model_name)
    return model_dir


def check_no_linked_folder(storage, model_name, flag="--model"):
    """A UsageError if storage/A, storage/A/B... up to the model folder storage/NAME is a symbolic link: the model
    would be written, or rewritten, wherever the link points. The storage folder itself, and the folders above it,
    may be links: where models are kept is the user's choice (TORCH_RL_STORAGE, or ./storage linked to another
    disk); below it, the model name alone says where a model is."""
    path = storage
    for part in model_name.split("/"):
        path = os.path.join(path, part)
        if os.path.islink(path):
            raise UsageError(
                f"{path} is a symbolic link; torch_rl does not follow links below the storage folder (the model "
                f"would be read or written wherever it points): put the folder itself there, or choose another {flag}"
            )
        if not os.path.lexists(path):
            return


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


def _is_model_file(name):
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in MODEL_FILE_PATTERNS)


def check_model_folder(model_dir, model_name):
    """A UsageError if ``model_dir`` exists and training must not write there: a file, or a non-empty folder that
    is not a torch_rl model (no status.pt, and files that scripts.train does not write, or a config.json that is
    not one of its own)."""
    if not os.path.lexists(model_dir):
        return
    if not os.path.isdir(model_dir):
        raise UsageError(f"{model_dir} is not a folder; choose another --model")
    try:
        entries = os.listdir(model_dir)
    except OSError as error:
        raise UsageError(f"cannot read the model folder {model_dir} ({error.strerror})") from None
    if STATUS_FILE in entries:
        return
    foreign = sorted(name for name in entries if not _is_model_file(name))
    if CONFIG_FILE in entries and not _is_training_config(os.path.join(model_dir, CONFIG_FILE)):
        foreign.append(CONFIG_FILE)
    if foreign:
        raise UsageError(
            f"the folder {model_dir} exists and is not a torch_rl model (it holds {foreign[0]!r}"
            f"{f' and {len(foreign) - 1} more' if len(foreign) > 1 else ''}); training does not write into it: "
            f"choose another --model, e.g. --model {model_name.rstrip('/')}_2"
        )


def _is_training_config(path):
    """Whether ``path`` is a config.json that scripts.train wrote (a JSON object with its flags)."""
    try:
        with open_for_reading(path) as f:
            config = json.loads(f.read(1024**2))
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"algo", "env", "frames_per_proc"} <= config.keys()


def status_path(model_dir):
    return os.path.join(model_dir, STATUS_FILE)


# ------------------------------------------------------------------------------------------ opening files safely
def _open_no_follow(path, flags, mode=0o644):
    """An fd of ``path`` opened with O_NOFOLLOW (a symbolic link is refused, not followed) and O_NONBLOCK (a FIFO
    does not hang the open); a UsageError unless it is a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise UsageError(
                f"{path} is a symbolic link; torch_rl does not follow links in a model folder (one could point "
                "anywhere): replace it with the file itself, or remove it"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UsageError(f"{path} is not a regular file; remove it, or choose another --model")
    os.set_blocking(fd, True)
    return fd


def open_for_reading(path):
    """``path`` opened for binary reading without following a symbolic link (FileNotFoundError if missing)."""
    return os.fdopen(_open_no_follow(path, os.O_RDONLY), "rb")


def open_for_appending(path, text=True):
    """``path`` opened for appending (created if missing) without following a symbolic link."""
    try:
        fd = _open_no_follow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    except OSError as error:
        raise UsageError(
            f"cannot open {path} for writing ({error.strerror}); make it writable, or choose another --model"
        ) from None
    return os.fdopen(fd, "a", newline="", encoding="utf-8") if text else os.fdopen(fd, "ab")


def file_identity(path):
    """(inode, size, mtime) of ``path`` (not followed), or None: tells whether a file was replaced meanwhile."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def atomic_write(path, write, binary=False, mode=None):
    """Writes ``path`` through ``write(file)`` into a temp file beside it, fsyncs, then renames it over ``path``:
    a crash at any moment leaves either the old or the new file, never a torn one. The temp file is created
    exclusively (O_EXCL: never through a link) and the rename replaces a link at ``path`` rather than writing
    through it. ``mode``: the new file's permissions (default: the temp file's 0600). An OSError (disk full,
    read-only folder) is a WriteError, and the old file is left as it was."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-", suffix=".tmp")
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"newline": "", "encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        _remove_quietly(tmp)
        raise WriteError(path, error) from error
    except BaseException:
        _remove_quietly(tmp)
        raise


def _remove_quietly(path):
    if path is not None:
        with contextlib.suppress(OSError):
            os.remove(path)


def _default_file_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def remove_temp_files(model_dir):
    """Removes the temp files of saves that a crash (e.g. SIGKILL) interrupted; the checkpoint itself is intact."""
    for pattern in TEMP_FILE_PATTERNS:
        for path in glob.glob(os.path.join(glob.escape(model_dir), pattern)):
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.remove(path)


def save_config(config, model_dir):
    atomic_write(
        os.path.join(model_dir, CONFIG_FILE),
        lambda f: json.dump(config, f, indent=2, sort_keys=True),
        mode=_default_file_mode(),
    )


# ----------------------------------------------------------------------------------------------------------- lock
class ModelLock:
    """An advisory lock (flock) on the model folder's train.lock, held while training: the kernel releases it
    when the process ends, however it ends (kill -9 included), so a stale lock never blocks a later run.
    Readers (evaluate, visualize, plot) do not take it: a checkpoint is replaced atomically, never torn."""

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, LOCK_FILE)
        try:
            self.fd = _open_no_follow(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as error:
            raise UsageError(f"cannot open the lock file {self.path} ({error.strerror})") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = self._holder()
            os.close(self.fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UsageError(f"cannot lock {self.path} ({error.strerror})") from None
            raise UsageError(
                f"the model {model_dir} is being trained by {f'process {holder}' if holder else 'another process'}"
                f" (it holds {self.path}); wait for it to finish or stop it, or choose another --model"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def _holder(self):
        """The PID the holder wrote (it writes it just after locking, so a moment is allowed for it)."""
        for _ in range(20):
            text = os.pread(self.fd, 32, 0).decode("ascii", "replace").strip()
            if text.isdigit():
                return int(text)
            time.sleep(0.025)
        return None

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the last descriptor releases the flock
            self.fd = None


# ----------------------------------------------------------------------------------------------------------- logs
def bounded_lines(file, max_line=MAX_LOG_LINE):
    """The lines of a binary ``file``, each as bytes (with its b"\\n", except a torn last line); a line longer
    than ``max_line`` is yielded as None, without holding it in memory."""
    while True:
        line = file.readline(max_line + 1)
        if not line:
            return
        if len(line) > max_line:
            while line and not line.endswith(b"\n"):  # skip the rest of the overlong line
                line = file.readline(max_line + 1)
            yield None
            continue
        yield line


def parse_csv_line(line):
    """The fields of one log.csv line (bytes), or None if it is not a line of text CSV (binary, NUL...)."""
    if line is None:
        return None
    try:
        return next(csv.reader([line.decode("utf-8").rstrip("\r\n")]), [])
    except (UnicodeDecodeError, csv.Error):
        return None


def trim_csv_log(model_dir, last_update):
    """Repairs log.csv for a resume at update ``last_update``: drops the rows after it (logged after the last
    save: the resumed run logs them again), a torn last line and damaged lines (binary, overlong, wrong field
    count, no update number), each alone; every other row stays, in order. The file is rewritten (atomically,
    keeping its permissions) only if there is something to drop; it is streamed, never held in memory."""
    path = os.path.join(model_dir, CSV_LOG_FILE)
    try:
        f = open_for_reading(path)
    except FileNotFoundError:
        return
    with f:
        if all(keep for _, keep in _judged_lines(f, path, last_update)):
            return
        f.seek(0)
        kept = (line for line, keep in _judged_lines(f, path, last_update) if keep)
        atomic_write(
            path, lambda out: out.writelines(kept), binary=True, mode=stat.S_IMODE(os.fstat(f.fileno()).st_mode)
        )


def _judged_lines(f, path, last_update):
    """(line, whether resume keeps it) for each line of the log.csv ``f``."""
    lines = bounded_lines(f)
    first = next(lines, b"")
    if first == b"":
        return
    if first is not None and not first.endswith(b"\n") and _is_cut_header(first):  # a crash cut the header off
        yield first, False
        return
    header = parse_csv_line(first)
    if not header or "update" not in header:
        raise UsageError(
            f"the training log {path} does not start with a CSV header holding 'update'; it is damaged or "
            "not a torch_rl log: move it away (e.g. rename it) to resume, training starts a new one"
        )
    yield first, True
    column = header.index("update")
    for line in lines:
        fields = parse_csv_line(line)
        update = _int_or_none(fields[column]) if fields is not None and len(fields) == len(header) else None
        yield line, line is not None and line.endswith(b"\n") and update is not None and update <= last_update


def _is_cut_header(line):
    """Whether ``line`` (no newline) can be the start of a header that CSVLogger wrote (column names and commas):
    anything else, e.g. a pickle or notes without a newline, is not a torch_rl log, and is not dropped unsaid."""
    return re.fullmatch(rb"[A-Za-z0-9_,\r]*", line) is not None


def _int_or_none(text):
    try:
        return int(text)
    except ValueError:
        return None


class TextLogger:
    """Prints a line and appends it to log.txt in the model folder."""

    def __init__(self, model_dir, quiet=False):
        self.path = os.path.join(model_dir, TEXT_LOG_FILE)
        self.quiet = quiet
        self.file = open_for_appending(self.path)

    def __call__(self, line):
        if not self.quiet:
            print(line, flush=True)
        try:
            self.file.write(line + "\n")
            self.file.flush()
        except OSError as error:
            raise WriteError(self.path, error) from error

    def close(self):
        with contextlib.suppress(OSError):
            self.file.close()


class CSVLogger:
    """Appends rows to log.csv; the header is written once, when the file is new. A log started with fewer columns
    (by older code) keeps its header: rows get its columns only, so that every row keeps the header's field count
    (a resume drops rows that do not, see trim_csv_log)."""

    def __init__(self, model_dir, fieldnames):
        self.path = os.path.join(model_dir, CSV_LOG_FILE)
        self.fieldnames = list(fieldnames)
        self.file = open_for_appending(self.path)
        new = os.fstat(self.file.fileno()).st_size == 0
        if not new:
            header = _existing_header(self.path)
            if header and set(header) <= set(self.fieldnames):
                self.fieldnames = header
        self.writer = csv.DictWriter(self.file, fieldnames=self.fieldnames, extrasaction="ignore")
        if new:
            self._write(self.writer.writeheader)

    def write(self, row):
        self._write(self.writer.writerow, row)

    def _write(self, write, *args):
        try:
            write(*args)
            self.file.flush()
        except OSError as error:
            raise WriteError(self.path, error) from error

    def close(self):
        with contextlib.suppress(OSError):
            self.file.close()


def _existing_header(path):
    """The header of an existing log.csv, or None if it cannot be read."""
    try:
        with open_for_reading(path) as f:
            return parse_csv_line(next(bounded_lines(f), b"") or b"")
    except (OSError, UsageError):
        return None


def command_line():
    return "python -m scripts." + os.path.basename(sys.argv[0]).removesuffix(".py") + " " + " ".join(sys.argv[1:])
