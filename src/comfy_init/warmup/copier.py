"""Copy one model file atomically, range by range: the I/O edge of the warmup.

A copy is written to a hidden temp name in its destination directory (``files.durable``:
never listed or resolved by ComfyUI), preallocated, filled range by range (by any number of
streams, each with its own ``Reader``) through ``files.kernel_copy``, then fsynced, given the
source's mtime and renamed into place (``commit``), its directory synced later with the
others (``durable.sync_dir``); on any error or cancel the temp file is removed (``abort``).
Each range of a large file starts its own writeback when it is done, so the fsync at commit
does not flush gigabytes at once (which stalls the reads of the other streams).
``pool.py`` schedules ranges over streams.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from comfy_init.files import durable, kernel_copy

SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range's dirty pages, no wait


def _libc_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    fn = getattr(ctypes.CDLL(None, use_errno=True), "sync_file_range", None)
    if fn is not None:
        fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
        fn.restype = ctypes.c_int
    return fn


_sync_file_range = _libc_sync_file_range()


def start_writeback(fd: int, off: int, length: int) -> None:
    """Start writing the range's dirty pages to disk now, without waiting: a large copy
    then reaches its fsync with little left to flush, instead of gigabytes at once.  A
    failure here shows again at the fsync, which is what decides; so it is not raised."""
    if _sync_file_range is not None:
        _sync_file_range(fd, off, length, SYNC_FILE_RANGE_WRITE)


class SourceChanged(Exception):
    """The source no longer has the size/mtime the warmup planned with."""


def split_ranges(size: int, chunk_bytes: int) -> list[tuple[int, int]]:
    """(offset, length) ranges of a file: one range up to two chunks, else chunk-sized ones."""
    if size <= 0:
        return []
    if size <= 2 * chunk_bytes:
        return [(0, size)]
    return [(off, min(chunk_bytes, size - off)) for off in range(0, size, chunk_bytes)]


@dataclass(eq=False)
class Target:
    """The temp file of one copy in progress and what is known about it so far."""

    source: Path
    dest: Path
    size: int
    mtime_ns: int
    temp: Path
    fd: int  # the target's own writable descriptor: ranges via pwrite/copy_file_range, fsync
    method: kernel_copy.Method = field(default_factory=kernel_copy.Method)
    copied: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    opens: int = 0  # of the source, by the streams (under ``opening``)
    opening: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, n: int) -> None:
        with self.lock:
            self.copied += n


def create(source: Path, dest: Path, size: int, mtime_ns: int) -> Target:
    """Create the temp file beside ``dest`` (0644) and reserve ``size`` bytes for it.
    Raises OSError (ENOSPC when it does not fit) and then leaves nothing behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    temp = durable.partial_path(dest)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        os.fchmod(fd, 0o644)
        if size > 0:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                    raise
                os.ftruncate(fd, size)  # cannot preallocate here: a sparse file will do
    except BaseException:
        os.close(fd)
        temp.unlink(missing_ok=True)
        raise
    return Target(source, dest, size, mtime_ns, temp, fd)


def commit(t: Target) -> None:
    """fsync, set the source's mtime, rename into place.  The copy is whole under its name
    from here on, even after a power loss; the rename itself is durable once its directory
    is synced (``durable.sync_dir``; the pool does it for many renames at once)."""
    if t.copied != t.size:
        raise OSError(errno.EIO, f"copied {t.copied} of {t.size} bytes", str(t.source))
    os.utime(t.fd, ns=(time.time_ns(), t.mtime_ns))
    os.fsync(t.fd)
    os.replace(t.temp, t.dest)
    # ComfyUI loads this model next: ask the kernel to keep (and read ahead) the copy.
    os.posix_fadvise(t.fd, 0, 0, os.POSIX_FADV_WILLNEED)
    os.close(t.fd)
    t.fd = -1


def abort(t: Target) -> None:
    """Close and remove the temp file (idempotent)."""
    if t.fd >= 0:
        with contextlib.suppress(OSError):
            os.close(t.fd)
        t.fd = -1
    t.temp.unlink(missing_ok=True)


class Reader(kernel_copy.Stream):
    """One stream's descriptors for the file it works on: its own source descriptor (so the
    volume sees one more reader), the target's descriptor for writes at offsets and, for
    sendfile, a destination descriptor of its own (sendfile writes at the descriptor's
    position)."""

    def __init__(self) -> None:
        super().__init__()
        self.target: Target | None = None

    def open(self, t: Target) -> None:
        self.close()
        self.target = t
        self.dst, self.dst_path, self.source = t.fd, t.temp, str(t.source)
        # inotify merges an event with the one queued just before it when they are the same:
        # two streams opening one source back to back would show as one open to the metrics
        # sidecar, which counts them against the report's ``source_opens``.  Opening the
        # folder between them queues a different event; the lock keeps the pair together.
        with t.opening:
            if t.opens:
                _touch_dir(t.source.parent)
            self.src = os.open(t.source, os.O_RDONLY | os.O_CLOEXEC)
            t.opens += 1
        st = os.fstat(self.src)
        if (st.st_size, st.st_mtime_ns) != (t.size, t.mtime_ns):
            raise SourceChanged(
                f"source changed during the warmup: {t.source} is now {st.st_size} bytes "
                f"(planned {t.size}) or has a new mtime (the next warmup copies it)"
            )
        os.posix_fadvise(self.src, 0, 0, os.POSIX_FADV_SEQUENTIAL)

    def close(self) -> None:
        self.close_own()
        if self.src >= 0:
            os.close(self.src)
        self.target, self.src, self.dst, self.dst_path = None, -1, -1, None


def _touch_dir(path: Path) -> None:
    """Open and close a folder: only the inotify event matters (a failure does not)."""
    with contextlib.suppress(OSError):
        os.close(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))


class RateLimiter:
    """A token bucket shared by every stream: at most ``bytes_per_second`` on average."""

    def __init__(self, bytes_per_second: int) -> None:
        self.rate = bytes_per_second
        self.burst = max(64 * 1024, bytes_per_second // 4)  # the largest single request
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self, n: int, cancel: threading.Event) -> bool:
        """Take ``n`` bytes' worth, waiting for them; False if cancelled meanwhile."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n  # may go into debt: concurrent callers queue up behind it
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            return not cancel.wait(wait)
        return not cancel.is_set()


def copy_range(
    t: Target,
    r: Reader,
    off: int,
    length: int,
    *,
    cancel: threading.Event,
    limiter: RateLimiter | None = None,
    on_progress: Callable[[int], None] = lambda n: None,
) -> None:
    """Copy bytes [off, off+length) from ``r``'s source into ``t``; raise
    ``kernel_copy.Cancelled`` if ``cancel`` is set between two requests."""

    def progress(n: int) -> None:
        t.add(n)
        on_progress(n)

    kernel_copy.copy_range(
        r, off, length, method=t.method, cancel=cancel, pace=limiter, on_progress=progress
    )
    # The volume's pages of this range are not wanted: keep the memory for the cache copies.
    os.posix_fadvise(r.src, off, length, os.POSIX_FADV_DONTNEED)
    if length < t.size:  # one range of a large file: its pages start for the disk now
        start_writeback(t.fd, off, length)
