"""No lost downloads: return model files that appear in the cache to the volume.

With the cache first in ComfyUI's search order, ComfyUI-Manager and the model downloader
save new models into the cache, on local disk that is wiped with the pod.  A model file in
the cache is copied to ``<name>`` in its type's home on the volume when

- warmup did not place it (it is not the ``dest`` of a report record that is ``hit`` or
  ``copied``), and no folder ComfyUI searches for its type (``SearchPath.folders``:
  ``models/<type>`` and the folders of the user's ``extra_model_paths.yaml``) holds that name
  (never overwritten, never a second copy);
- it is complete: its writer closed it (IN_CLOSE_WRITE / IN_MOVED_TO, or it was found by
  the start-up scan), no process has it open for writing (``/proc/*/fdinfo``), and its
  size and mtime stayed the same for ``settle_seconds``.

The home is where ComfyUI's own downloaders would have saved it without the cache: the first
existing folder of the type's search list (``SearchPath.home``), so a folder of the user's
YAML marked ``is_default``, or the only one that exists, gets it rather than
``ComfyUI/models``.  The copy goes to a hidden temp name beside the destination
(``files.durable``), through the warmup's in-kernel copy (``files.kernel_copy``), is
fsynced, gets the cache file's mtime and is then *linked* into place (``link`` fails if the
name exists, so a file another pod wrote meanwhile is kept), falling back to a rename where
hard links are not supported.  A failed copy is retried with a growing delay.  Temp names
(``*.part``, ``*.tmp``, ``*.comfy-init-partial``) and hidden files are never models, so never
copied.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from comfy_init import logs
from comfy_init.files import durable, kernel_copy
from comfy_init.manifest.search_path import SearchPath
from comfy_init.sidecar import model_files, proc_writers
from comfy_init.warmup.report import Report

log = logs.get_logger("writeback")

RETRY_SECONDS = (30.0, 60.0, 300.0, 900.0)


def placed_by_warmup(report: Report | None) -> frozenset[str]:
    """Real paths of the cache files the warmup put (or found) in place."""
    if report is None:
        return frozenset()
    return frozenset(
        os.path.realpath(r.dest) for r in report.files if r.status in ("hit", "copied") and r.dest
    )


def verdict(cache_file: Path, volume_files: Sequence[Path], placed: frozenset[str]) -> str | None:
    """Why ``cache_file`` must not be copied back (``warmup``, ``on_volume``), or None;
    ``volume_files`` are its name in each folder ComfyUI searches for its type."""
    if os.path.realpath(cache_file) in placed:
        return "warmup"
    if any(os.path.lexists(f) for f in volume_files):
        return "on_volume"
    return None


@dataclass
class Candidate:
    type: str
    name: str
    path: Path
    due: float  # monotonic time of the next look
    size: int = -1
    mtime_ns: int = -1
    attempts: int = 0


@dataclass
class Stats:
    files: dict[str, int]
    bytes: dict[str, int]
    failures: dict[str, int]


class DownloadReturn:
    """Candidates come from ``notice`` (watcher events, the start-up scan); ``run_due``
    looks at those whose time has come and copies the complete ones back."""

    def __init__(
        self,
        cache_path: Path,
        volume: SearchPath,
        read_report: Callable[[], Report | None],
        expect_own_open: Callable[[Path], None] = lambda _p: None,
        *,
        settle_seconds: float = 5.0,
        proc_root: Path = Path("/proc"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache_path = cache_path
        self.volume = volume
        self.read_report = read_report
        self.expect_own_open = expect_own_open
        self.settle_seconds = settle_seconds
        self.proc_root = proc_root
        self.clock = clock
        self._lock = threading.Lock()
        self._candidates: dict[Path, Candidate] = {}
        self.stats = Stats(defaultdict(int), defaultdict(int), defaultdict(int))
        # Set by ``notice`` so that a loop asleep until the next due candidate looks again
        # (whoever stops that loop sets it too).
        self.wake = threading.Event()

    def notice(self, type_: str, name: str, path: Path) -> None:
        """``path`` (a model file in the cache) may be new or was just written: look at it
        again after the settle time."""
        with self._lock:
            cand = self._candidates.get(path)
            due = self.clock() + self.settle_seconds
            if cand is None:
                self._candidates[path] = Candidate(type_, name, path, due)
            else:
                cand.due, cand.size, cand.mtime_ns = due, -1, -1
        self.wake.set()

    def scan(self) -> int:
        """Notice every model file in the cache (files downloaded while we were down)."""
        found = 0
        with contextlib.suppress(FileNotFoundError):
            for type_, name, path in model_files.walk_model_files(self.cache_path):
                self.notice(type_, name, path)
                found += 1
        return found

    def pending(self) -> int:
        with self._lock:
            return len(self._candidates)

    def seconds_to_next(self, longest: float) -> float:
        """Seconds until the next candidate is due (0 if one is), at most ``longest``."""
        with self._lock:
            first = min((c.due for c in self._candidates.values()), default=None)
        if first is None:
            return longest
        return max(0.0, min(longest, first - self.clock()))

    def run_due(self, stop: threading.Event) -> None:
        """Handle every candidate whose time has come (called by the sidecar's loop)."""
        now = self.clock()
        with self._lock:
            due = [c for c in self._candidates.values() if c.due <= now]
        placed: frozenset[str] | None = None
        for cand in due:
            if stop.is_set():
                return
            if placed is None:
                placed = placed_by_warmup(_quiet(self.read_report))
            self._look(cand, placed, stop)

    # --- one candidate
    def _look(self, cand: Candidate, placed: frozenset[str], stop: threading.Event) -> None:
        dest = self.volume.home(cand.type) / cand.name
        try:
            st = cand.path.stat()
        except FileNotFoundError:
            self._drop(cand)
            return
        on_volume = [folder / cand.name for folder in self.volume.folders(cand.type)]
        reason = verdict(cand.path, on_volume, placed)
        if reason is not None:
            log.debug("writeback_not_needed", path=str(cand.path), reason=reason)
            self._drop(cand)
            return
        steady = (st.st_size, st.st_mtime_ns) == (cand.size, cand.mtime_ns)
        cand.size, cand.mtime_ns = st.st_size, st.st_mtime_ns
        if not steady or proc_writers.has_writer(cand.path, self.proc_root):
            cand.due = self.clock() + self.settle_seconds
            return
        try:
            outcome = self._copy(cand, dest, stop)
        except OSError as exc:
            self.stats.failures[cand.type] += 1
            delay = RETRY_SECONDS[min(cand.attempts, len(RETRY_SECONDS) - 1)]
            cand.attempts += 1
            cand.due = self.clock() + delay
            log.warning(
                "writeback_failed",
                path=str(cand.path),
                dest=str(dest),
                error=str(exc),
                retry_in_seconds=delay,
            )
            return
        if outcome == "copied":
            self.stats.files[cand.type] += 1
            self.stats.bytes[cand.type] += cand.size
            log.info("writeback_copied", path=str(cand.path), dest=str(dest), bytes=cand.size)
        elif outcome == "exists":
            log.info("writeback_not_needed", path=str(cand.path), reason="on_volume")
        elif outcome == "changed":
            cand.due = self.clock() + self.settle_seconds
            return
        if outcome != "stopped":
            self._drop(cand)

    def _drop(self, cand: Candidate) -> None:
        with self._lock:
            if self._candidates.get(cand.path) is cand:
                del self._candidates[cand.path]

    def _copy(self, cand: Candidate, dest: Path, stop: threading.Event) -> str:
        """Copy ``cand`` to ``dest``: ``copied``, ``exists`` (someone was faster),
        ``changed`` (the cache file changed meanwhile) or ``stopped``."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = durable.partial_path(dest)
        self.expect_own_open(cand.path)
        src_fd = os.open(cand.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            out_fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                stream = kernel_copy.Stream(src_fd, out_fd, source=str(cand.path))
                method = kernel_copy.Method()
                kernel_copy.copy_range(stream, 0, cand.size, method=method, cancel=stop)
                st = os.fstat(src_fd)
                if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                    return "changed"
                os.utime(out_fd, ns=(time.time_ns(), cand.mtime_ns))
                os.fsync(out_fd)
            except kernel_copy.Cancelled:
                return "stopped"
            finally:
                os.close(out_fd)
            outcome = place_no_replace(temp, dest)
            durable.sync_dir(dest.parent)
            return outcome
        finally:
            os.close(src_fd)
            temp.unlink(missing_ok=True)


def place_no_replace(temp: Path, dest: Path) -> str:
    """Give ``temp`` the name ``dest`` unless ``dest`` exists: ``copied`` or ``exists``."""
    try:
        os.link(temp, dest)
        return "copied"
    except FileExistsError:
        return "exists"
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
            raise
    if os.path.lexists(dest):  # no hard links here: check, then rename (a small race)
        return "exists"
    os.rename(temp, dest)
    return "copied"


def _quiet(read: Callable[[], Report | None]) -> Report | None:
    try:
        return read()
    except (OSError, ValueError, TypeError):
        return None
