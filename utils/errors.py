"""User mistakes end a script with one clear line on stderr and exit code 2, never a traceback.

Every script exits with one of EXIT_CODES' codes; numeric flags are checked by the ``type=`` helpers below when
the command line is parsed, before anything is created.
"""

import argparse
import functools
import math
import os
import sys

from torch_rl.vec_env import EnvWorkerError
from utils.interrupts import end_of_start_up, ignore_interrupts_while_exiting

EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = """exit codes:
  0    done
  1    failed: an environment raised or hung, training diverged... (a model keeps its last checkpoint)
  2    usage error: one line "error: ...", and nothing is written
  130  interrupted by Ctrl-C or SIGTERM (scripts.train saves the model first)"""


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what was wrong and how to fix it."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors (unknown flag, invalid choice...) are one line ``error: ...``, exit code 2;
    its --help ends with the exit codes."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("epilog", EXIT_CODES)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(EXIT_USAGE)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and shows defaults, except where there is none to show or the help
    text already says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


# --------------------------------------------------------------------------------------- argparse type= helpers
def _bounds(low, high, low_open, high_open):
    """The valid range in words: 'from 0 to 1', 'at least 1', 'more than 0 and less than 1' ('' if unbounded)."""
    if low is not None and high is not None and not low_open and not high_open:
        return f"from {_number(low)} to {_number(high)}"
    parts = []
    if low is not None:
        parts.append(f"{'more than' if low_open else 'at least'} {_number(low)}")
    if high is not None:
        parts.append(f"{'less than' if high_open else 'at most'} {_number(high)}")
    return " and ".join(parts)


def _number(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def _expected(kind, bounds):
    return f"{kind} {bounds}" if bounds else kind


def integer(low=None, high=None):
    """An argparse ``type=``: an integer in [low, high] (``1e6`` is read as 1000000). The error names the value and
    the range; argparse prefixes the flag."""
    expected = _expected("an integer", _bounds(low, high, False, False))

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not (math.isfinite(number) and number.is_integer()):
                raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
            value = int(number)
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value

    def check(value):
        # A value that was never text (a recipe's TOML, a checkpoint's saved flags) meets the same range.
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"must be {expected}, got {_describe(value)}")
        try:
            return parse(str(value))
        except argparse.ArgumentTypeError as error:
            raise ValueError(str(error)) from None

    parse.__name__ = "integer"
    parse.check = check
    return parse


def number(low=None, high=None, low_open=False, high_open=False):
    """An argparse ``type=``: a finite float in the range (``low_open``: low itself excluded; same for high)."""
    expected = _expected("a finite number", _bounds(low, high, low_open, high_open))

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text!r}") from None
        if (
            not math.isfinite(value)
            or (low is not None and (value <= low if low_open else value < low))
            or (high is not None and (value >= high if high_open else value > high))
        ):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {text}")
        return value

    def check(value):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"must be {expected}, got {_describe(value)}")
        try:
            return parse(repr(float(value)))
        except OverflowError:  # an integer beyond any float
            raise ValueError(f"must be {expected}, got {value}") from None
        except argparse.ArgumentTypeError as error:
            raise ValueError(str(error)) from None

    parse.__name__ = "number"
    parse.check = check
    return parse


def _describe(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_flag_value(action, value):
    """``value`` if it is one that the flag of the argparse ``action`` accepts from the command line (its type's
    range, its choices, True/False for a switch); a ValueError saying what it must be otherwise. For values that
    come from elsewhere than the command line: a recipe, the flags saved with a model."""
    if isinstance(action, argparse._StoreTrueAction):
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false, got {_describe(value)}")
        return value
    check = getattr(action.type, "check", None)
    if check is not None:
        return check(value)
    if action.choices is not None:
        if value not in action.choices:
            raise ValueError(f"must be one of {', '.join(map(str, action.choices))}, got {_describe(value)}")
        return value
    if value is not None and not isinstance(value, str):
        raise ValueError(f"must be a string, got {_describe(value)}")
    return value


SEED = integer(0, 2**32 - 1)  # what numpy's and torch's seeding accept
# Bounds beyond any sensible use, so that a typo fails at once instead of exhausting the machine.
MAX_WORKERS = 1024  # worker processes
MAX_THREADS = 1024  # torch threads
MAX_ENV_TIMEOUT = 7 * 24 * 3600.0  # seconds


def add_env_timeout_argument(parser, stops):
    """``--env-timeout``, declared once for train and evaluate; ``stops``: what a hung env stops, in words."""
    parser.add_argument(
        "--env-timeout",
        type=number(0, MAX_ENV_TIMEOUT),
        default=300.0,
        metavar="SECONDS",
        help=f"longest an env's step or reset may take; a longer one stops {stops} with one line naming the env "
        "(exit code 1); 0: no limit",
    )


MAX_PAUSE = 60.0  # seconds between the frames of scripts.visualize


# -------------------------------------------------------------------------------------------- memory bound
# Rough upper estimates, for a bound that turns "--procs 1000000000" into one line instead of a machine that
# swaps until the kernel kills the run (a MiniGrid env takes about 10-15 KiB; a one-hot 7x7x20 float observation
# is 3.9 KiB per frame of rollout).
ENV_BYTES = 64 * 1024
FRAME_BYTES = 4 * 1024


def available_memory():
    """Bytes of memory available to a new allocation (MemAvailable on Linux), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_procs_fit_in_memory(procs, frames_per_proc=0, memory=None):
    """A UsageError if ``procs`` envs with ``frames_per_proc`` frames of rollout each clearly exceed the memory."""
    memory = available_memory() if memory is None else memory
    if memory is None:
        return
    per_env = ENV_BYTES + frames_per_proc * FRAME_BYTES
    most = max(1, memory // per_env)
    if procs > most:
        rollout = f" with its {frames_per_proc} frames of rollout" if frames_per_proc else ""
        raise UsageError(
            f"--procs {procs} does not fit in memory: at most {most} here (about {per_env // 1024} KiB per env"
            f"{rollout}, {memory / 2**30:.1f} GiB available); lower --procs"
            + (" or --frames-per-proc" if frames_per_proc else "")
        )


# ---------------------------------------------------------------------------------------------- running main
def cli(main):
    """Runs ``main`` so that a UsageError prints ``error: <message>`` and exits with code 2.

    An EnvWorkerError that ``main`` does not handle prints one line too, with exit code 1; so does Ctrl-C (or
    SIGTERM, under ``python -m``) that ``main`` does not handle (e.g. while starting up), with exit code 130.
    """

    @functools.wraps(main)
    def wrapper(argv=None):
        end_of_start_up()
        try:
            return main(argv)
        except UsageError as error:
            print(f"error: {one_line(error)}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        except EnvWorkerError as error:  # e.g. an env that cannot be created or reset
            print(f"error: {one_line(error)}", file=sys.stderr)
            sys.exit(EXIT_FAILED)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        finally:
            ignore_interrupts_while_exiting()

    return wrapper


def one_line(error):
    """An exception's message on one line (multi-line messages are joined)."""
    return " ".join(str(error).split())
