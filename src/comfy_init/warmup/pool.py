"""A pool of copy streams that takes (file, byte range) tasks in priority order.

``WARMUP_STREAMS`` worker threads share one priority queue of ranges, so several files and
several ranges of one large file are read at once: a network volume gives many concurrent
readers far more than one.  The caller submits files in priority order (``submit`` creates
the preallocated temp file); each worker opens the source itself (``on_open`` is called just
before) and keeps it open for the next range of the same file; the stream that finishes a
file's last range commits or aborts it and reports a ``CopyOutcome`` through ``on_done``.
The renames are made durable in batches, one fsync per directory (``sync_dirs``): a crash
before that can lose a rename (the next warmup copies the file again), never show a part.
"""

from __future__ import annotations

import errno
import functools
import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from comfy_init.files import durable
from comfy_init.files.kernel_copy import Cancelled
from comfy_init.warmup import copier
from comfy_init.warmup.copier import RateLimiter, Reader, Target


@dataclass(frozen=True)
class CopyJob:
    key: int  # priority: lower keys are copied first; also the caller's name for the file
    source: Path
    dest: Path
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class CopyOutcome:
    key: int
    ok: bool
    bytes_copied: int
    seconds: float  # from submit to commit/abort
    method: str  # the copy path used last: copy_file_range, sendfile or pwrite
    error: str | None = None
    no_space: bool = False  # the filesystem ran out of space (ENOSPC) during the copy
    cancelled: bool = False


@dataclass(eq=False)
class _Job:
    key: int
    target: Target
    started: float
    unassigned: int  # ranges not yet taken by a stream
    remaining: int  # ranges not yet finished
    error: BaseException | None = None
    cancelled: bool = False
    finishing: bool = False  # every range is done: the temp file is complete (or abandoned)


class CopyPool:
    """A fixed pool of copy streams; results arrive through ``on_done``, called from a
    worker thread.  Use as a context manager: leaving it stops the streams."""

    def __init__(
        self,
        *,
        streams: int,
        chunk_bytes: int,
        cancel: threading.Event,
        on_done: Callable[[CopyOutcome], None],
        on_progress: Callable[[int, int], None] = lambda key, n: None,
        on_open: Callable[[int], None] = lambda key: None,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.streams = streams
        self.chunk_bytes = chunk_bytes
        self.cancel = cancel
        self._on_done = on_done
        self._on_progress = on_progress
        self._on_open = on_open
        self._limiter = limiter
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the caller waits here: room, or idle
        self._ready = threading.Condition(lock)  # idle streams wait here for a range
        self._heap: list[tuple[int, int, int, _Job, int]] = []
        self._seq = itertools.count()
        self._jobs: set[_Job] = set()
        self._renamed_in: set[Path] = set()  # directories with renames not yet synced
        self._closing = False
        self._threads = [
            threading.Thread(target=self._work, name=f"copy-{i}", daemon=True)
            for i in range(streams)
        ]
        for t in self._threads:
            t.start()

    def submit(self, spec: CopyJob) -> None:
        """Create and preallocate the temp file, then queue its ranges.  Raises OSError
        (ENOSPC when the file does not fit) and then leaves nothing behind."""
        target = copier.create(spec.source, spec.dest, spec.size, spec.mtime_ns)
        ranges = copier.split_ranges(spec.size, self.chunk_bytes)
        job = _Job(spec.key, target, time.monotonic(), len(ranges), len(ranges))
        with self._cond:
            self._jobs.add(job)
            for off, length in ranges:
                heapq.heappush(self._heap, (spec.key, off, next(self._seq), job, length))
            self._ready.notify(len(ranges))
        if not ranges:
            with self._cond:
                job.finishing = True
            self._finish(job)

    def wait_for_room(self, timeout: float) -> bool:
        """Wait until fewer ranges are queued than there are streams, so that a new file
        keeps every stream busy without jumping the queue; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._heap) < self.streams, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no file is in flight; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._jobs, timeout)

    def unallocated_bytes(self) -> int:
        """Bytes the files in flight will still take on disk (size minus the blocks already
        allocated to their temp files): free space that is already promised."""
        with self._cond:
            return sum(_unallocated(job.target) for job in self._jobs if not job.finishing)

    def sync_dirs(self) -> list[tuple[Path, OSError]]:
        """fsync each directory that got a copy renamed into it since the last call, once:
        the renames are durable when this returns.  The directories that failed, and why
        (their copies are whole either way; a lost rename means a copy made again)."""
        with self._cond:
            dirs, self._renamed_in = self._renamed_in, set()
        failed = []
        for path in sorted(dirs):
            try:
                durable.sync_dir(path)
            except OSError as exc:
                failed.append((path, exc))
        return failed

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._ready.notify_all()
        for t in self._threads:
            t.join()

    def __enter__(self) -> CopyPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the streams -------------------------------------------------------------------

    def _take(self, reader: Reader) -> tuple[_Job, int, int] | None:
        with self._cond:
            while not self._heap:
                if self._closing:
                    return None
                reader.close()  # an idle stream holds no descriptor
                self._ready.wait()
            _key, off, _seq, job, length = heapq.heappop(self._heap)
            job.unassigned -= 1
            self._cond.notify_all()  # room in the queue
            return job, off, length

    def _work(self) -> None:
        reader = Reader()
        while (task := self._take(reader)) is not None:
            job, off, length = task
            if self.cancel.is_set():
                job.cancelled = True
            if job.error is None and not job.cancelled:
                try:
                    if reader.target is not job.target:
                        self._on_open(job.key)  # before the open, as the report promises
                        reader.open(job.target)
                    copier.copy_range(
                        job.target,
                        reader,
                        off,
                        length,
                        cancel=self.cancel,
                        limiter=self._limiter,
                        on_progress=functools.partial(self._on_progress, job.key),
                    )
                except Cancelled:
                    job.cancelled = True
                except Exception as exc:  # any failure of this file is reported, the rest goes on
                    job.error = job.error or exc
            if reader.target is job.target and (job.unassigned == 0 or job.error is not None):
                reader.close()
            with self._cond:
                job.remaining -= 1
                last = job.finishing = job.remaining == 0
            if last:
                self._finish(job)
        reader.close()

    def _finish(self, job: _Job) -> None:
        error = job.error
        ok = error is None and not job.cancelled
        if ok:
            try:
                copier.commit(job.target)
            except OSError as exc:
                ok, error = False, exc
            else:
                with self._cond:
                    self._renamed_in.add(job.target.dest.parent)
        if not ok:
            copier.abort(job.target)
        outcome = CopyOutcome(
            key=job.key,
            ok=ok,
            bytes_copied=job.target.copied,
            seconds=time.monotonic() - job.started,
            method=job.target.method.name,
            error=None if error is None else _describe(error),
            no_space=isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT),
            cancelled=job.cancelled and error is None,
        )
        self._on_done(outcome)  # before the job leaves: wait_idle() implies every on_done ran
        with self._cond:
            self._jobs.discard(job)
            self._cond.notify_all()


def _unallocated(t: Target) -> int:
    try:
        allocated = os.fstat(t.fd).st_blocks * 512
    except OSError:
        allocated = 0
    return max(0, t.size - allocated)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return str(exc) or type(exc).__name__
