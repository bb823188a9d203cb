"""Holding Ctrl-C and SIGTERM back while a piece of work must finish as a whole."""

import contextlib
import signal

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
