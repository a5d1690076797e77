"""The one self-pipe wake-up: a poke (from a thread or a signal) ends a wait and stays until
drained; other descriptors wake the same wait and are reported; a closed pipe ignores pokes."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from comfy_init.wakeup import WakePipe

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pipe() -> Iterator[WakePipe]:
    wake = WakePipe()
    yield wake
    wake.close()


def test_a_poke_from_another_thread_ends_a_wait_without_limit(pipe: WakePipe) -> None:
    returned: list[set[int]] = []
    sleeper = threading.Thread(target=lambda: returned.append(pipe.wait(None)))
    sleeper.start()
    pipe.poke()
    sleeper.join(20)
    assert not sleeper.is_alive()
    assert returned == [set()]  # the pipe itself is not among the descriptors reported


def test_a_poke_stays_until_drained(pipe: WakePipe) -> None:
    assert not pipe.poked()
    pipe.poke()
    pipe.poke()
    assert pipe.wait(None) == set()  # returns: the poke is there
    assert pipe.wait(None) == set()  # and still there for the next wait
    assert pipe.poked()
    pipe.drain()
    assert not pipe.poked()
    assert pipe.wait(0.01) == set()


def test_wait_reports_the_other_descriptors_that_are_readable(pipe: WakePipe) -> None:
    quiet_r, quiet_w = os.pipe()
    busy_r, busy_w = os.pipe()
    try:
        os.write(busy_w, b"x")
        assert pipe.wait(None, quiet_r, busy_r) == {busy_r}
        assert not pipe.poked()
        assert pipe.wait(0, quiet_r) == set()
    finally:
        for fd in (quiet_r, quiet_w, busy_r, busy_w):
            os.close(fd)


def test_a_closed_pipe_ignores_pokes_and_closes_once() -> None:
    pipe = WakePipe()
    pipe.close()
    assert pipe.closed
    pipe.poke()  # a stop after the sleeper is gone: nothing to wake, no error
    pipe.close()


def test_caught_signals_poke_the_pipe_until_it_is_closed() -> None:
    seen: list[int] = []
    previous_handler = signal.signal(signal.SIGUSR1, lambda signum, _frame: seen.append(signum))
    previous_fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(previous_fd)
    pipe = WakePipe()
    try:
        pipe.catch_signals()
        os.kill(os.getpid(), signal.SIGUSR1)
        assert pipe.wait(None) == set()
        assert pipe.poked()
        assert seen == [signal.SIGUSR1]
    finally:
        pipe.close()
        restored = signal.set_wakeup_fd(previous_fd)
        signal.signal(signal.SIGUSR1, previous_handler)
    assert restored == previous_fd  # close() put the previous wake-up fd back
