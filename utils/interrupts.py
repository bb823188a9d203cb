"""Holding Ctrl-C and SIGTERM back while a piece of work must finish as a whole."""

import contextlib
import os
import signal
import sys

HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_deferred():
    """Runs the block with SIGINT and SIGTERM held back; one that arrived meanwhile raises KeyboardInterrupt at the
    end of the block. Why: training's bookkeeping after an update (status, log rows, checkpoint) must happen whole,
    or a resumed run finds a checkpoint ahead of its logs. Main thread only, as Python's signal handlers are."""
    arrived = []
    previous = {signum: signal.getsignal(signum) for signum in HELD_SIGNALS}
    for signum in HELD_SIGNALS:
        signal.signal(signum, lambda signum, _frame: arrived.append(signum))
    failed = False
    try:
        yield
    except BaseException:
        failed = True  # the block's own error wins over a held signal
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if arrived and not failed:
            raise KeyboardInterrupt(f"signal {signal.Signals(arrived[0]).name} during a deferred block")


@contextlib.contextmanager
def interrupts_stop_training():
    """Runs the block with the first Ctrl-C or SIGTERM (e.g. from a scheduler) raising KeyboardInterrupt, as Ctrl-C
    does, and the ones after it ignored: they must not cut short the save that follows. The handlers of before
    come back at the end (training may run in-process: tests, notebooks)."""
    previous = {signum: signal.getsignal(signum) for signum in HELD_SIGNALS}
    for signum in HELD_SIGNALS:
        signal.signal(signum, _stop_once)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stop_once(signum, _frame):
    ignore_interrupts()
    raise KeyboardInterrupt(signal.Signals(signum).name)


def ignore_interrupts():
    """From now on Ctrl-C and SIGTERM are ignored (until a handler is set again)."""
    for signum in HELD_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


RUN_AS_PROGRAM = {"on": False}  # set by handle_interrupts_as_program(); read by utils.errors.cli


def handle_interrupts_as_program():
    """For ``python -m scripts.X`` (called by scripts/__init__.py, before the seconds that importing torch takes):
    from then on SIGTERM stops the program as Ctrl-C does, and Ctrl-C or SIGTERM that nothing handles (e.g. while
    the imports load) ends it with one line and exit code 130, not a traceback or a silent -15.

    Until ``main`` starts (:func:`end_of_start_up`, called by utils.errors.cli) either signal ends the program at
    once rather than raising KeyboardInterrupt: an exception raised inside an import can be swallowed by the
    library being imported, and the program would then train on as if nothing had arrived. There is nothing to
    save yet."""
    RUN_AS_PROGRAM["on"] = True
    signal.signal(signal.SIGINT, _exit_interrupted)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # one that the parent ignores stays ignored
        signal.signal(signal.SIGTERM, _exit_interrupted)
    previous_hook = sys.excepthook

    def excepthook(kind, value, traceback):
        if not issubclass(kind, KeyboardInterrupt):
            return previous_hook(kind, value, traceback)
        _exit_interrupted()

    sys.excepthook = excepthook


def _exit_interrupted(_signum=None, _frame=None):
    """Ends the program at once with one line and exit code 130 (a signal handler too: it imports nothing)."""
    sys.stderr.flush()
    os.write(2, b"error: interrupted\n")
    os._exit(130)


def end_of_start_up():
    """``main`` starts: from now on Ctrl-C and SIGTERM raise KeyboardInterrupt, which main handles (train saves the
    model)."""
    for signum in HELD_SIGNALS:
        if signal.getsignal(signum) is _exit_interrupted:
            signal.signal(signum, signal.default_int_handler)


def ignore_interrupts_while_exiting():
    """After main() of a program: a late Ctrl-C or SIGTERM must not turn a finished (or saved) run's exit into a
    traceback or -15 while the interpreter shuts down."""
    if RUN_AS_PROGRAM["on"]:
        ignore_interrupts()
