"""Sleep until woken: the one self-pipe wake-up of the package, and the main loop's clock.

``WakePipe`` lets a thread sleep on its pipe and, at once, on other descriptors (inotify, a
pidfd, a listening socket) until another thread ``poke``s it, one of them is readable or a
timeout passes.  A poke stays until ``drain``: a loop told to stop keeps waking at once,
wherever it sleeps next.  ``catch_signals`` makes the C-level signal handler write to the
pipe too (``signal.set_wakeup_fd``), so a signal ends the main thread's sleep even in
``poll``; the Python handler (which only records the signal, see ``pid1.stop_signals``) runs right
after.

``Wakeup`` is the main loop's alarm clock (PID 1, the sidecar's main thread): signals and
worker threads wake it, and every wake-up is drained.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import threading
import time


class WakePipe:
    """A pipe another thread pokes to end this one's ``wait``; ``close`` it once no thread
    waits on it any more (a poke after ``close`` does nothing)."""

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._read, False)
        os.set_blocking(self._write, False)
        self._lock = threading.Lock()  # poke() never writes to a closed (maybe reused) fd
        self._closed = False
        self._previous_signal_fd: int | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    def fileno(self) -> int:
        return self._read

    def poke(self) -> None:
        """Wake the waiting thread (now, or at its next ``wait`` if it is not waiting)."""
        with self._lock:
            if not self._closed:
                with contextlib.suppress(BlockingIOError):  # full: wake-ups are pending anyway
                    os.write(self._write, b"\0")

    def wait(self, timeout: float | None, *fds: int) -> set[int]:
        """Sleep until poked, one of ``fds`` is readable, or ``timeout`` seconds have passed
        (None: no limit).  The ``fds`` that are readable; the pipe is not drained."""
        poller = select.poll()
        poller.register(self._read, select.POLLIN)
        for fd in fds:
            poller.register(fd, select.POLLIN)
        ms = None if timeout is None else math.ceil(max(0.0, timeout) * 1000)
        return {fd for fd, _ in poller.poll(ms) if fd != self._read}

    def poked(self) -> bool:
        """Is a poke waiting (not drained yet)?  Does not sleep."""
        return bool(select.select([self._read], [], [], 0)[0])

    def drain(self) -> None:
        """Forget the pokes so far: the next ``wait`` sleeps until a new one."""
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 4096):
                pass

    def catch_signals(self) -> None:
        """Signals poke the pipe from now until ``close`` (call from the main thread)."""
        self._previous_signal_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)

    def close(self) -> None:
        """Close the pipe (idempotent); restores the previous signal wake-up fd if signals
        were caught."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._previous_signal_fd is not None:
                signal.set_wakeup_fd(self._previous_signal_fd)
            os.close(self._read)
            os.close(self._write)


class Wakeup:
    """The main loop's wake-up: a signal or a ``poke`` from a worker thread ends ``wait``.
    Create it in the main thread before the first loop check."""

    def __init__(self) -> None:
        self._pipe = WakePipe()
        self._pipe.catch_signals()

    def poke(self) -> None:
        """Wake the loop from another thread."""
        self._pipe.poke()

    def wait(self, timeout: float) -> None:
        """Sleep up to ``timeout`` seconds, less if woken; then drain the pipe."""
        if timeout > 0:
            self._pipe.wait(timeout)
        self._pipe.drain()

    def close(self) -> None:
        self._pipe.close()


class Deadline:
    """A point on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def passed(self) -> bool:
        return time.monotonic() >= self.at
