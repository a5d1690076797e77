"""Counting model opens, and telling ComfyUI's opens from comfy-init's own.

inotify reports *that* a model file was opened, not *who* opened it.  Opens that are not
ComfyUI loading a model are subtracted here, each kind by what announces it in advance:

- ``warmup``: the copier opens volume files to copy them.  The warmup report announces each
  of those opens *before* it happens (``FileRecord.source_opens``); that many volume opens of
  the file are consumed.  When an open arrives that the last report read does not cover, the
  report is read again first (it was written before the open, so it is there).
- ``sidecar``: the sidecar's own opens (page-cache residency checks, write-back reads) are
  announced with ``expect_own_open(path)`` just before the open.
- ``writer``: a file created with ``open(O_CREAT)`` (a download being saved) gives
  IN_CREATE then IN_OPEN; that first open is the writer's, not a load.

Blind spots (documented in the README): opens by other processes (a shell, ``comfy-init
warmup --status`` run by hand, a backup), opens made while the sidecar was down, and opens
lost when the kernel's event queue overflows (counted in ``comfyinit_inotify_overflows_total``).
Announcements that no open follows expire after ``own_ttl`` seconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable

from comfy_init.warmup.report import Report

LOCATIONS: tuple[str, ...] = ("cache", "volume")


def path_key(path: str | os.PathLike[str]) -> str:
    """The identity of a file for matching announcements with events."""
    return os.path.realpath(path)


class OpenCounter:
    """Thread-safe counters of model opens by (type, location) and of discounted opens."""

    def __init__(
        self,
        read_report: Callable[[], Report | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
        own_ttl: float = 30.0,
        create_ttl: float = 5.0,
    ) -> None:
        self._read_report = read_report
        self._clock = clock
        self._own_ttl = own_ttl
        self._create_ttl = create_ttl
        self._lock = threading.Lock()
        self.opens: dict[tuple[str, str], int] = {}
        self.discounted: dict[tuple[str, str], int] = defaultdict(int)
        self._own: dict[str, list[float]] = defaultdict(list)
        self._created: dict[str, float] = {}
        self._run: tuple[int, float] | None = None
        self._announced: dict[str, int] = {}
        self._consumed: dict[str, int] = defaultdict(int)
        self._keys: dict[str, str] = {}

    # --- announcements
    def baseline(self, report: Report | None) -> None:
        """Take the report as it is when watching starts: opens it announced so far
        happened before we watched, so none of them is waited for."""
        with self._lock:
            self._sync(report)
            self._consumed = defaultdict(int, self._announced)

    def update_report(self, report: Report | None) -> None:
        with self._lock:
            self._sync(report)

    def expect_own_open(self, path: str | os.PathLike[str]) -> None:
        """Call right before the sidecar opens ``path``: that open is not ComfyUI's."""
        with self._lock:
            self._own[path_key(path)].append(self._clock() + self._own_ttl)

    # --- events
    def on_created(self, path: str | os.PathLike[str]) -> None:
        with self._lock:
            self._created[path_key(path)] = self._clock() + self._create_ttl

    def on_open(self, path: str | os.PathLike[str], type_: str, location: str) -> str:
        """Account one IN_OPEN of a model file; return who it was attributed to:
        ``comfyui`` (counted) or the discount reason (``sidecar``, ``writer``, ``warmup``)."""
        key = path_key(path)
        with self._lock:
            now = self._clock()
            by = self._attribute(key, location, now)
            if by is None:
                for loc in LOCATIONS:
                    self.opens.setdefault((type_, loc), 0)
                self.opens[type_, location] += 1
                return "comfyui"
            self.discounted[location, by] += 1
            return by

    def snapshot(self) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
        with self._lock:
            return dict(self.opens), dict(self.discounted)

    # --- internals (lock held)
    def _attribute(self, key: str, location: str, now: float) -> str | None:
        deadlines = [d for d in self._own.get(key, ()) if d > now]
        if deadlines:
            deadlines.pop(0)
            self._own[key] = deadlines
            return "sidecar"
        self._own.pop(key, None)
        created = self._created.pop(key, None)
        if created is not None and created > now:
            return "writer"
        if location == "volume":
            if self._consume_copier_open(key):
                return "warmup"
            self._sync(self._safe_read())
            if self._consume_copier_open(key):
                return "warmup"
        return None

    def _consume_copier_open(self, key: str) -> bool:
        if self._announced.get(key, 0) > self._consumed[key]:
            self._consumed[key] += 1
            return True
        return False

    def _safe_read(self) -> Report | None:
        try:
            return self._read_report()
        except (OSError, ValueError, TypeError):
            return None

    def _sync(self, report: Report | None) -> None:
        if report is None:
            return
        run = (report.pid, report.started_at)
        if run != self._run:
            self._run = run
            self._announced = {}
            self._consumed = defaultdict(int)
        for record in report.files:
            if record.source_opens and record.source:
                key = self._keys.get(record.source)
                if key is None:
                    key = self._keys[record.source] = path_key(record.source)
                self._announced[key] = record.source_opens
