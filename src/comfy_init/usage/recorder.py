"""The sidecar's side of the journal: ComfyUI's model opens, appended in batches.

``record`` only queues (it runs in the inotify thread); ``flush`` stats the opened files and
appends their records in one write, every ``BATCH_SECONDS`` and at stop.  A journal that
cannot be written (volume full, read-only, gone) costs a warning once and a count in
``errors``; the records wait, at most ``MAX_PENDING`` of them, for a write that works.
Compaction is the journal ``Writer``'s.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from comfy_init import logs
from comfy_init.usage import journal
from comfy_init.usage.records import Boot, Open, Record

log = logs.get_logger("usage.recorder")

BATCH_SECONDS = 5.0
MAX_PENDING = 10_000


@dataclass(frozen=True)
class _Seen:
    time: float
    type: str
    name: str
    path: Path
    location: str


class Recorder:
    """Appends this pod's records to its journal; thread-safe ``record``."""

    def __init__(
        self,
        path: Path,
        keep_days: int,
        *,
        clock: Callable[[], float] = time.time,
        compact_bytes: int = journal.COMPACT_BYTES,
    ) -> None:
        self.writer = journal.Writer(path, keep_days, compact_bytes)
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: list[_Seen] = []
        self._pending: list[Record] = [Boot(clock())]
        self.written = 0  # records appended
        self.errors = 0  # failed writes (appends and compactions)
        self._warned = False

    def record(self, type_: str, name: str, path: Path, location: str) -> None:
        """ComfyUI opened ``path`` (``<type>/<name>`` in the ``location`` tree) just now."""
        with self._lock:
            self._seen.append(_Seen(self._clock(), type_, name, path, location))

    def flush(self) -> None:
        """Append what was recorded since the last flush (never raises for I/O)."""
        with self._lock:
            seen, self._seen = self._seen, []
        batch = self._pending
        for s in seen:
            try:
                st = os.stat(s.path)
            except OSError:
                continue  # gone already: nothing to warm from it
            batch.append(Open(s.time, s.type, s.name, st.st_size, st.st_mtime_ns, s.location))
        if not any(isinstance(r, Open) for r in batch):
            return  # the boot waits for the first open: a pod that loads nothing writes nothing
        try:
            self.writer.write(batch)
        except OSError as exc:
            self._failed(exc)
            self._pending = batch[-MAX_PENDING:]
            return
        self.written += len(batch)
        self._pending = []
        try:
            kept = self.writer.compact_if_grown(self._clock())
        except OSError as exc:
            self._failed(exc)
            return
        if kept is not None:
            log.info("usage_journal_compacted", path=str(self.writer.path), records=kept)

    def run(self, stop: threading.Event, every: float = BATCH_SECONDS) -> None:
        """Flush every ``every`` seconds until ``stop``, then once more."""
        while not stop.wait(every):
            self.flush()
        self.flush()

    def _failed(self, exc: OSError) -> None:
        self.errors += 1
        if not self._warned:
            self._warned = True
            log.warning(
                "usage_journal_unwritable",
                path=str(self.writer.path),
                error=exc.strerror or repr(exc),
                hint="model use is not recorded for @auto until the volume is writable",
            )
