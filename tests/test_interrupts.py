"""The CLI's interrupt handler: raise at once, or after a deferred block (native callbacks swallow)."""

from __future__ import annotations

import os
import signal

import pytest

from inti_export.errors import Interrupted, defer_interrupts, interrupt_handler


@pytest.fixture
def handler():
    previous = signal.signal(signal.SIGTERM, interrupt_handler)
    yield
    signal.signal(signal.SIGTERM, previous)


def test_interrupt_raises_at_once(handler):
    with pytest.raises(Interrupted) as e:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes
            pass
    assert e.value.exit_code == 143


def test_deferred_interrupt_is_raised_when_the_block_ends(handler):
    reached_end_of_block = False
    with pytest.raises(Interrupted), defer_interrupts():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):
            pass
        reached_end_of_block = True
    assert reached_end_of_block
