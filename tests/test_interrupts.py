import os
import signal

import pytest

from utils.interrupts import interrupts_deferred


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_waits_for_the_end_of_the_block(signum):
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    finished = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signum)
            finished.append("the rest of the block")
    assert finished == ["the rest of the block"]
    assert {s: signal.getsignal(s) for s in before} == before


def test_no_signal_no_interrupt():
    with interrupts_deferred():
        value = 1
    assert value == 1


def test_the_blocks_own_error_wins_over_a_held_signal():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(FloatingPointError):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            raise FloatingPointError("diverged")
    assert signal.getsignal(signal.SIGINT) is before
