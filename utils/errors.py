"""User mistakes end a script with one clear line on stderr and exit code 2, never a traceback."""
import functools
import sys


class UsageError(Exception):
    """Something the user asked for cannot be done; the message says what was wrong and how to fix it."""


def cli(main):
    """Runs ``main`` so that a UsageError prints ``error: <message>`` and exits with code 2."""

    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except UsageError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
