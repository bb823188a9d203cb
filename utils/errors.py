"""User mistakes end a script with one clear line on stderr and exit code 2, never a traceback."""

import argparse
import functools
import sys

from torch_rl.vec_env import EnvWorkerError


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what was wrong and how to fix it."""


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors (unknown flag, invalid choice...) are one line ``error: ...``, exit code 2."""

    def error(self, message):
        print(f"error: {message}; see {self.prog} --help", file=sys.stderr)
        sys.exit(2)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's line breaks and shows defaults, except where there is none to show or the help
    text already says it."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def cli(main):
    """Runs ``main`` so that a UsageError prints ``error: <message>`` and exits with code 2.

    An EnvWorkerError that ``main`` does not handle prints one line too, with exit code 1; so does Ctrl-C that
    ``main`` does not handle (e.g. while starting up), with exit code 130.
    """

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UsageError as error:
            print(f"error: {one_line(error)}", file=sys.stderr)
            sys.exit(2)
        except EnvWorkerError as error:  # e.g. an env that cannot be created or reset
            print(f"error: {one_line(error)}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper


def one_line(error):
    """An exception's message on one line (multi-line messages are joined)."""
    return " ".join(str(error).split())
