"""Read the startup list into the page cache with many parallel streams.

Folders first (the import system lists them), then files in first-read order, large ones as
byte ranges, each range through its own file descriptor: a network volume serves many
concurrent readers far faster than one.  The data goes in-kernel to ``/dev/null``
(``sendfile``): the pages stay in the page cache, nothing is copied to user space.  A file
is read to its end whatever size the list says (a changed file costs only bandwidth); a
file that is gone is counted and skipped.  ``done_at`` says when each file was complete.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from comfy_init import logs
from comfy_init.readahead.startlist import Entry
from comfy_init.warmup.copier import RateLimiter

log = logs.get_logger("readahead")

PIECE_BYTES = 4 * 1024 * 1024  # one sendfile call: the unit of rate limiting and cancelling


@dataclass
class Outcome:
    """What one replay did; ``done_at`` maps a file's list path to when it was complete."""

    files: int = 0
    bytes: int = 0
    dirs: int = 0
    missing: int = 0
    changed: int = 0
    started: float = 0.0
    finished: float | None = None
    done_at: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started


@dataclass(frozen=True)
class _Task:
    entry: Entry
    offset: int
    length: int  # -1: to the end of the file
    first: bool


def plan(entries: list[Entry], chunk_bytes: int) -> list[_Task]:
    """Folders first, then every file as ranges of ``chunk_bytes``, in list order."""
    tasks = [_Task(e, 0, 0, True) for e in entries if e.kind == "dir"]
    for e in entries:
        if e.kind != "file":
            continue
        starts = range(0, max(e.size, 1), chunk_bytes)
        last = len(starts) - 1
        for n, off in enumerate(starts):
            tasks.append(_Task(e, off, -1 if n == last else chunk_bytes, n == 0))
    return tasks


class Replay:
    """``streams`` threads working through the plan; ``start()``, then ``wait()``."""

    def __init__(
        self,
        root: Path,
        entries: list[Entry],
        *,
        streams: int,
        chunk_bytes: int,
        cancel: threading.Event,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.root = root
        self.tasks = plan(entries, chunk_bytes)
        self.streams = max(1, streams)
        self.cancel = cancel
        self.limiter = limiter
        self.outcome = Outcome()
        self._next = 0
        self.listed = {e.path for e in entries if e.kind == "file"}
        self._ranges_left = {
            e.path: len(range(0, max(e.size, 1), chunk_bytes)) for e in entries if e.kind == "file"
        }
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._running = 0
        self.done = threading.Event()

    def start(self) -> Replay:
        self.outcome.started = time.monotonic()
        if not self.tasks:
            self._finish()
            return self
        self._running = min(self.streams, len(self.tasks))
        for n in range(self._running):
            t = threading.Thread(target=self._work, name=f"readahead-{n}", daemon=True)
            self._threads.append(t)
            t.start()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def _take(self) -> _Task | None:
        with self._lock:
            if self._next >= len(self.tasks) or self.cancel.is_set():
                return None
            task = self.tasks[self._next]
            self._next += 1
            return task

    def _work(self) -> None:
        try:
            with open(os.devnull, "wb") as sink:
                while (task := self._take()) is not None:
                    try:
                        self._run(task, sink.fileno())
                    except OSError as exc:
                        log.debug("readahead_read_failed", path=task.entry.path, error=str(exc))
        except Exception as exc:  # a stream that dies must not leave the replay unfinished
            log.error("readahead_stream_failed", error=str(exc), exc_info=exc)
        finally:
            with self._lock:
                self._running -= 1
                last = self._running == 0
            if last:
                self._finish()

    def _run(self, task: _Task, sink: int) -> None:
        path = self.root / task.entry.path
        if task.entry.kind == "dir":
            try:
                os.listdir(path)
            except FileNotFoundError:
                self._count(missing=1)
                return
            self._count(dirs=1)
            return
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            if task.first:
                self._count(missing=1)
            return
        try:
            if task.first:
                st = os.fstat(fd)
                if (st.st_size, st.st_mtime_ns) != (task.entry.size, task.entry.mtime_ns):
                    self._count(changed=1)
            moved = self._read(fd, sink, task.offset, task.length)
        finally:
            os.close(fd)
        with self._lock:
            self.outcome.bytes += moved
            left = self._ranges_left[task.entry.path] = self._ranges_left[task.entry.path] - 1
            if left == 0:
                self.outcome.files += 1
                self.outcome.done_at[task.entry.path] = time.monotonic()

    def _read(self, fd: int, sink: int, offset: int, length: int) -> int:
        moved = 0
        while length < 0 or moved < length:
            want = PIECE_BYTES if length < 0 else min(PIECE_BYTES, length - moved)
            if self.limiter is not None and not self.limiter.acquire(want, self.cancel):
                break
            if self.cancel.is_set():
                break
            n = os.sendfile(sink, fd, offset + moved, want)
            if n == 0:
                break
            moved += n
        return moved

    def _count(self, *, dirs: int = 0, missing: int = 0, changed: int = 0) -> None:
        with self._lock:
            self.outcome.dirs += dirs
            self.outcome.missing += missing
            self.outcome.changed += changed

    def _finish(self) -> None:
        self.outcome.finished = time.monotonic()
        o = self.outcome
        log.info(
            "readahead_done",
            files=o.files,
            bytes=o.bytes,
            dirs=o.dirs,
            missing=o.missing,
            changed=o.changed,
            seconds=round(o.seconds, 3),
            cancelled=self.cancel.is_set(),
        )
        self.done.set()
