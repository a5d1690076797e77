"""The first thing PID 1 does: handlers for the stop signals, before any other import.

As PID 1 the kernel drops every signal that has no handler, so a ``docker stop`` that
arrives while Python is still importing would be lost.  ``/init`` is started through
``env --block-signal=…`` so such a signal stays *pending* instead; ``install()`` sets the
handlers and only then unblocks, and the pending signal is delivered to the handler.

Handlers only record the signal; the main loop acts on it.  This module imports nothing
but ``signal`` so that it can run first.
"""

from __future__ import annotations

import signal

# Signals that ask PID 1 to stop.  SIGCHLD is caught too, so that the main loop wakes up
# to reap.  Kept as plain ints to stay cheap at import time.
STOP_SIGNALS: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP)
WAKE_SIGNALS: tuple[int, ...] = (*STOP_SIGNALS, signal.SIGCHLD)

# Stop signals received and not yet taken by the main loop, oldest first.
pending: list[int] = []
_installed = False


def _record(signum: int, _frame: object) -> None:
    if signum != signal.SIGCHLD:
        pending.append(signum)


def install() -> None:
    """Install the recording handlers, then unblock the signals (idempotent)."""
    global _installed  # noqa: PLW0603 - process-wide by nature: there is one signal table
    if _installed:
        return
    for signum in WAKE_SIGNALS:
        signal.signal(signum, _record)
    # Whatever a launcher blocked for us is unblocked now that handlers exist; nothing stays
    # blocked for the children we exec later.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WAKE_SIGNALS)
    _installed = True


def take() -> int | None:
    """Pop the oldest recorded stop signal, or None."""
    return pending.pop(0) if pending else None
