"""The warmup lock: one warmup (or ``--clean``) at a time on a cache.

An exclusive ``flock`` on ``Settings.warmup_lock_path`` (``$RUN_DIR/warmup.lock``).  The
holder writes its pid into the file, so a second warmup can say whom it is waiting for.  The
kernel drops the lock when its holder dies (even by ``kill -9``), so a lock is never stale;
the next holder may then clean up what the dead one left (its ``*.comfy-init-partial``
files).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from comfy_init import logs
from comfy_init.errors import EnvironmentMissing

POLL_SECONDS = 0.1  # how often a waiter tries again (and sees a cancel)
REMIND_SECONDS = 30.0  # how often a waiter says again that it is still waiting


def holder(fd: int) -> str:
    """The pid written by the lock's holder ("" if none was written)."""
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _open(path: Path) -> int:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise EnvironmentMissing(
            f"warmup lock {path}: cannot be opened: {exc.strerror} "
            "(make RUN_DIR a writable local directory)"
        ) from None


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


@contextlib.contextmanager
def hold(path: Path, cancel: threading.Event) -> Iterator[bool]:
    """Hold the lock at ``path`` for the ``with`` body; waits while another process holds
    it.  Yields True when held, False when ``cancel`` was set before it could be taken."""
    log = logs.get_logger("warmup")
    fd = _open(path)
    try:
        held = _try_lock(fd)
        if not held:
            log.info("warmup_waiting_for_lock", lock=str(path), holder_pid=holder(fd))
            reminded = time.monotonic()
            while not held and not cancel.wait(POLL_SECONDS):
                held = _try_lock(fd)
                if not held and time.monotonic() - reminded >= REMIND_SECONDS:
                    log.info("warmup_still_waiting_for_lock", lock=str(path), holder_pid=holder(fd))
                    reminded = time.monotonic()
            if held:
                log.info("warmup_lock_acquired", lock=str(path))
        if held:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield held
    finally:
        os.close(fd)  # closing the descriptor releases the flock
