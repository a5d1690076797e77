"""The main loop's alarm clock: sleep until a signal arrives, a thread pokes, or a deadline.

``signal.set_wakeup_fd`` makes the C-level signal handler write a byte to a pipe the moment
a signal arrives, even while the main thread sits in ``select``; the Python handler (which
only records the signal, see ``stop_signals``) runs right after.  Worker threads poke the same pipe
to say "something finished".
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time


class Wakeup:
    """Owns the wakeup pipe; create it in the main thread before the first loop check."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._previous = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def poke(self) -> None:
        """Wake the loop from another thread."""
        # A full pipe means wake-ups are pending anyway.
        with contextlib.suppress(BlockingIOError):
            os.write(self._write, b"\0")

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less if woken; then drain the pipe."""
        if timeout > 0:
            select.select([self._read], [], [], timeout)
        try:
            while os.read(self._read, 4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        signal.set_wakeup_fd(self._previous)
        os.close(self._read)
        os.close(self._write)


class Deadline:
    """A point on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return time.monotonic() >= self.at
