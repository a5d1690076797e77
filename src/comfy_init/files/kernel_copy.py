"""Move a byte range from one file to another inside the kernel, a few MiB per request.

Three ways, tried in this order: ``copy_file_range`` (same filesystem; may share blocks),
``sendfile`` (across filesystems, e.g. a FUSE volume to ext4; the data never enters Python),
``pread``/``pwrite`` (works everywhere).  A way that answers "not for these files" (EXDEV,
EINVAL, ... or 0 bytes) is given up for that pair of files by every stream copying it
(``Method``); 0 bytes from the last way means the source ended early (EIO).  ``cancel`` is
checked between requests, so a copy stops within one request (``Cancelled``).

The warmup (``warmup/copier.py``, many streams per file) and the sidecar's download return
(one stream) both copy through ``copy_range``.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

MiB = 1024 * 1024
SYSCALL_BYTES = 8 * MiB  # one copy request: large for throughput, small enough to stop fast
METHODS = ("copy_file_range", "sendfile", "pwrite")  # tried in this order
# errno values that mean "this method does not apply to these two files": use the next one.
_UNSUPPORTED = frozenset(
    {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF}
)


class Cancelled(Exception):
    """The copy was asked to stop between two requests."""


class Pace(Protocol):
    """A shared budget of bytes per second (e.g. ``warmup.copier.RateLimiter``)."""

    @property
    def burst(self) -> int: ...  # the largest single request

    def acquire(self, n: int, cancel: threading.Event) -> bool: ...  # False: cancelled


class Method:
    """The way that works for one pair of files, shared by every stream copying them: it
    starts at ``copy_file_range`` and only moves down the list."""

    def __init__(self, name: str = METHODS[0]) -> None:
        if name not in METHODS:
            raise ValueError(f"unknown copy method {name!r} (one of {', '.join(METHODS)})")
        self.name = name
        self._lock = threading.Lock()

    def downgrade(self, failed: str) -> None:
        """``failed`` cannot copy these files: every stream moves on to the next way."""
        with self._lock:
            if self.name == failed:
                self.name = METHODS[METHODS.index(failed) + 1]


class Stream:
    """One stream's descriptors: ``src`` (its own), ``dst`` (written at offsets, so streams
    may share it).  ``sendfile`` writes at a descriptor's position: a stream whose ``dst`` is
    shared names the destination (``dst_path``) and gets a descriptor of its own for it on
    first use (closed by ``close_own``); without ``dst_path``, ``dst`` is used.  ``source``
    names the source in errors."""

    def __init__(
        self, src: int = -1, dst: int = -1, dst_path: Path | None = None, source: str = ""
    ) -> None:
        self.src = src
        self.dst = dst
        self.dst_path = dst_path
        self.source = source
        self.buffer = bytearray(0)  # for pread/pwrite, kept from one request to the next
        self._own_dst = -1

    def sendfile_dst(self) -> int:
        if self.dst_path is None:
            return self.dst
        if self._own_dst < 0:
            self._own_dst = os.open(self.dst_path, os.O_WRONLY | os.O_CLOEXEC)
        return self._own_dst

    def close_own(self) -> None:
        """Close the descriptor this stream opened itself (``src`` and ``dst`` are the
        caller's)."""
        if self._own_dst >= 0:
            os.close(self._own_dst)
            self._own_dst = -1


def copy_range(
    stream: Stream,
    off: int,
    length: int,
    *,
    method: Method,
    cancel: threading.Event,
    pace: Pace | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> None:
    """Copy bytes [off, off+length) of ``stream.src`` to the same place in ``stream.dst``.
    Raises Cancelled if ``cancel`` is set between two requests, OSError on I/O errors."""
    pos, end = off, off + length
    while pos < end:
        if cancel.is_set():
            raise Cancelled
        want = min(SYSCALL_BYTES, end - pos)
        if pace is not None:
            want = min(want, pace.burst)
            if not pace.acquire(want, cancel):
                raise Cancelled
        name = method.name
        try:
            n = _move(name, stream, pos, want)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED or name == METHODS[-1]:
                raise
            n = 0
        if n == 0:  # unsupported here (some filesystems answer 0), or the source shrank
            if name == METHODS[-1]:
                ended = f"the source ended early (at byte {pos} of {end})"
                raise OSError(errno.EIO, ended, stream.source or None)
            method.downgrade(name)
            continue
        on_progress(n)
        pos += n


def _move(method: str, stream: Stream, pos: int, want: int) -> int:
    """Copy up to ``want`` bytes at offset ``pos`` with ``method``; the bytes moved."""
    if method == "copy_file_range":
        return os.copy_file_range(stream.src, stream.dst, want, pos, pos)
    if method == "sendfile":
        dst = stream.sendfile_dst()
        os.lseek(dst, pos, os.SEEK_SET)
        return os.sendfile(dst, stream.src, pos, want)
    if len(stream.buffer) < want:
        stream.buffer = bytearray(SYSCALL_BYTES)
    view = memoryview(stream.buffer)[:want]
    n = os.preadv(stream.src, [view], pos)
    done = 0
    while done < n:
        done += os.pwrite(stream.dst, view[done:n], pos + done)
    return n
