"""The report of the warmup that is running: cheap to keep current, written in order.

A warmup of many small files changes the report hundreds of times a second, and the report
names every file, so rendering all of it for every change costs time in the square of the
number of files.  ``LiveReport`` keeps the JSON text of each file record and renders again
only the records that changed; the totals are counted as statuses change, not summed.

Writes are grouped: an announced open waits for a write that started after it
(``flush(upto=…)``), and one write carries every change made before it started, so streams
that announce opens at the same moment share one write.  ``source_opens`` is in the file
before ``opened`` returns, so the copier can open the source right after (the metrics
sidecar counts on it).  The records' lock is held only while the pieces are put together,
never during the file write, which sends them with ``writev`` without joining them.  The
last write (``write_final``) renders the whole report the plain way.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

from comfy_init.files.durable import write_atomic, write_pieces
from comfy_init.warmup.report import FileStatus, Report, Totals

# The statuses ``Totals`` counts (the others are states on the way to one of these).
COUNTED: tuple[FileStatus, ...] = (
    "hit",
    "copied",
    "skipped_space",
    "missing",
    "failed",
    "interrupted",
)


class LiveReport:
    """``report`` as the files change; every mutation goes through a method here."""

    def __init__(self, path: Path, report: Report, started: float) -> None:
        self.path = path
        self.report = report
        self.started = started  # time.monotonic() at the start of the run
        self.lock = threading.Lock()  # the records, counters and parts
        self._write_lock = threading.Lock()  # one file write at a time, in change order
        self._parts = [_part(i, vars(f)) for i, f in enumerate(report.files)]
        self._stale: set[int] = set()  # records whose part is out of date
        self._counts = Counter(f.status for f in report.files if f.status in COUNTED)
        self._bytes_total = sum(f.size for f in report.files)
        self.bytes_copied = sum(f.bytes_copied for f in report.files)
        self._version = 0  # bumped by every change a reader should see at once
        self._written = -1  # the version of the last write
        self.last_write = 0.0  # time.monotonic() of the last write

    @property
    def dirty(self) -> bool:
        """A status or an open is not in the file yet (progress alone does not count)."""
        return self._written < self._version

    # -- changes -----------------------------------------------------------------------

    def set_status(self, key: int, status: FileStatus, error: str | None = None) -> None:
        with self.lock:
            rec = self.report.files[key]
            if rec.status in COUNTED:
                self._counts[rec.status] -= 1
            if status in COUNTED:
                self._counts[status] += 1
            rec.status, rec.error = status, error
            self._stale.add(key)
            self._version += 1

    def progressed(self, key: int, n: int) -> None:
        with self.lock:
            self.report.files[key].bytes_copied += n
            self.bytes_copied += n
            self._stale.add(key)

    def measured(self, key: int, seconds: float, bytes_copied: int) -> None:
        """The copy's own account of a finished file, which wins over the running sum."""
        with self.lock:
            rec = self.report.files[key]
            self.bytes_copied += bytes_copied - rec.bytes_copied
            rec.seconds, rec.bytes_copied = seconds, bytes_copied
            self._stale.add(key)

    def opened(self, key: int) -> None:
        """Count one more open of the source and return once a write holds it."""
        with self.lock:
            self.report.files[key].source_opens += 1
            self._stale.add(key)
            self._version += 1
            version = self._version
        self.flush(upto=version)

    # -- writes ------------------------------------------------------------------------

    def flush(self, upto: int | None = None) -> None:
        """Write the report, unless a write that began after version ``upto`` already
        holds it (``upto=None``: write now, with fresh totals and progress)."""
        with self._write_lock:
            with self.lock:
                if upto is not None and self._written >= upto:
                    return
                version = self._version
                pieces = self._render()
            write_pieces(self.path, pieces)
            self._written = version
            self.last_write = time.monotonic()

    def write_final(self) -> None:
        """The last write of the run, rendered in full from the records."""
        with self._write_lock, self.lock:
            self.report.totals = Totals.of(self.report.files, time.monotonic() - self.started)
            write_atomic(self.path, self.report.to_compact_json())
            self._written = self._version
            self.last_write = time.monotonic()

    def _render(self) -> list[bytes]:
        """The report as ``Report.to_compact_json`` has it, in pieces (caller holds
        ``self.lock``)."""
        files = self.report.files
        for key in self._stale:
            self._parts[key] = _part(key, vars(files[key]))
        self._stale.clear()
        totals = Totals(
            files=len(files),
            bytes_total=self._bytes_total,
            bytes_copied=self.bytes_copied,
            seconds=time.monotonic() - self.started,
            **{s: self._counts[s] for s in COUNTED},
        )
        self.report.totals = totals
        head = {k: v for k, v in vars(self.report).items() if k not in ("files", "totals")}
        head["totals"] = vars(totals)
        head["skipped"] = [vars(s) for s in self.report.skipped]
        text = json.dumps(head)
        return [f'{text[:-1]}, "files": ['.encode(), *self._parts, b"]}\n"]


def _part(index: int, record: dict[str, object]) -> bytes:
    """One file record as it sits in the list, with the separator before it."""
    return (", " if index else "").encode() + json.dumps(record).encode()
