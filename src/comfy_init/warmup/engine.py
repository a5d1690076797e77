"""One warmup run: config → plan → copy in priority order → report.

It never writes ComfyUI's ``extra_model_paths.yaml``: that file has one writer
(``comfyui/model_paths.write``), called by the commands that run a warmup.

Per-file problems never raise: a file that fails or does not fit is recorded in the report
(``warmup/report.py``) and the rest goes on; so is a bad config line, a symlink leading off
the volume, a bad part of the user's YAML (``skipped``, ``user_yaml_problems``).  Only a
config file that cannot be read raises ``ConfigError``, before anything is copied.
``cancel`` stops the run within seconds: temp files are removed and the unfinished files are
marked ``interrupted``.
"""

from __future__ import annotations

import errno
import os
import queue
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from stat import S_ISREG

from comfy_init.errors import EnvironmentMissing
from comfy_init.files.durable import is_partial
from comfy_init.manifest import lines
from comfy_init.manifest.expand import SearchPath
from comfy_init.settings import Settings
from comfy_init.usage import auto
from comfy_init.warmup import lock, plan, records
from comfy_init.warmup.copier import RateLimiter
from comfy_init.warmup.live_report import LiveReport
from comfy_init.warmup.pool import CopyJob, CopyOutcome, CopyPool
from comfy_init.warmup.progress import Progress
from comfy_init.warmup.report import FileStatus, Report

SERVICE_SECONDS = 0.2  # how often the run wakes to log progress and notice a cancel
REPORT_EVERY_SECONDS = 1.0
STATUS_WRITE_GAP = 0.1  # a finished file waits this long at most for the next report write
DIR_SYNC_SECONDS = 1.0  # how often the renames of the copies made meanwhile are made durable
SPACE_FRESH_SECONDS = 0.5  # how long a free-space answer is trusted for files that fit


def run(settings: Settings, *, config: str | None, cancel: threading.Event) -> Report:
    """Warm the cache; the returned report says what happened to every file."""
    path = lines.locate(settings, config)
    search = SearchPath.of(settings)
    config_lines = lines.load_lines(path, search.anchors())
    entries = config_lines.entries
    expanded = auto.expand_config(entries, settings, now=time.time(), prune=True, search=search)
    expansion = expanded.expansion
    for needed, var in ((settings.cache_path, "CACHE_PATH"), (settings.run_dir, "RUN_DIR")):
        try:
            needed.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvironmentMissing(
                f"{var}={needed}: cannot create the directory: {exc.strerror} "
                f"(mount a writable local disk there or set {var})"
            ) from None
    progress = Progress()
    report = Report(
        state="running",
        pid=os.getpid(),
        started_at=time.time(),
        config=str(path),
        models_path=str(settings.models_path),
        cache_path=str(settings.cache_path),
        skipped=records.skipped([*config_lines.skipped, *expansion.skipped]),
        user_yaml_problems=list(search.problems),
        auto=None if expanded.auto is None else expanded.auto.summary(),
    )
    progress.problems(report)
    with lock.hold(settings.warmup_lock_path, cancel) as held:
        if held:
            for removed in remove_partials(settings.cache_path):
                progress.partial_removed(str(removed))
            # Planned under the lock: a warmup that ran meanwhile may have copied files.
            dests = [plan.dest_for(settings.cache_path, f) for f in expansion.files]
            steps = plan.plan(expansion.files, settings.cache_path, existing_copies(dests))
            report.files = records.files(settings, entries, expansion, steps)
            mtimes = {str(s.dest): s.file.mtime_ns for s in steps}
            _Run(settings, report, mtimes, cancel, progress).execute()
        else:  # stopped while another warmup held the lock: nothing was touched
            report.state = "interrupted"
            report.finished_at = time.time()
    progress.finished(report)
    return report


def existing_copies(dests: Sequence[Path]) -> dict[Path, plan.CacheEntry | None]:
    """The stat of each destination's cache copy (None: no regular file there)."""
    found: dict[Path, plan.CacheEntry | None] = {}
    for dest in dests:
        try:
            st = dest.stat()
        except OSError:
            found[dest] = None
            continue
        found[dest] = plan.CacheEntry(st.st_size, st.st_mtime_ns) if S_ISREG(st.st_mode) else None
    return found


def remove_partials(cache_path: Path) -> list[Path]:
    """Remove every copy-in-progress temp file below ``cache_path`` (call it only under the
    lock: then none of them belongs to a live warmup)."""
    removed: list[Path] = []
    for dirpath, _dirs, names in os.walk(cache_path):
        for name in names:
            if is_partial(name):
                p = Path(dirpath, name)
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


class Space:
    """Free space on the cache filesystem for the next file: asked of the kernel when the
    last answer is older than ``SPACE_FRESH_SECONDS`` or says the file does not fit, and in
    between estimated as that answer minus the files submitted since (statfs is slow next
    to a small file's copy).  A file is skipped only on a fresh answer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.last_free = 0  # free bytes, as last asked (minus the space already promised)
        self._estimate = 0
        self._asked = -SPACE_FRESH_SECONDS

    def shortfall(self, pool: CopyPool, size: int, reserve: int, stale: int) -> int | None:
        """None when ``size`` bytes fit (replacing a stale copy of ``stale`` bytes) and
        leave ``reserve`` free; else the free bytes they do not fit in."""
        fresh = time.monotonic() - self._asked < SPACE_FRESH_SECONDS
        if fresh and plan.fits(size, self._estimate, reserve, stale):
            return None
        st = os.statvfs(self.path)
        self._asked = time.monotonic()
        self.last_free = self._estimate = st.f_bavail * st.f_frsize - pool.unallocated_bytes()
        return None if plan.fits(size, self.last_free, reserve, stale) else self.last_free

    def promised(self, size: int) -> None:
        """A file of ``size`` bytes was submitted since the last answer."""
        self._estimate -= size


class _Run:
    """The copying part of a run, under the lock.  Copy streams call ``live.opened`` and
    ``live.progressed``; everything else happens on the caller's thread."""

    def __init__(
        self,
        settings: Settings,
        report: Report,
        mtimes: dict[str, int],
        cancel: threading.Event,
        progress: Progress,
    ) -> None:
        self.settings = settings
        self.report = report
        self.mtimes = mtimes  # dest -> the source mtime the plan was made with
        self.cancel = cancel
        self.progress = progress
        self.live = LiveReport(settings.report_path, report, time.monotonic())
        self.outcomes: queue.Queue[CopyOutcome] = queue.Queue()
        self.space = Space(settings.cache_path)
        self.last_dir_sync = time.monotonic()
        self.todo_bytes = sum(r.size for r in report.files if r.status == "pending")

    def execute(self) -> None:
        files = self.report.files
        todo = [i for i, r in enumerate(files) if r.status == "pending"]
        self.progress.started(self.report.config, len(files), len(todo), self.todo_bytes)
        for rec in files:
            if rec.status == "hit":
                self.progress.cached(rec)
            elif rec.status == "missing":
                self.progress.unmatched(rec)
        self.live.flush()
        s = self.settings
        rate = s.warmup_max_bytes_per_second
        with CopyPool(
            streams=s.warmup_streams,
            chunk_bytes=s.warmup_chunk_bytes,
            cancel=self.cancel,
            on_done=self.outcomes.put,
            on_progress=self.live.progressed,
            on_open=self.live.opened,
            limiter=RateLimiter(rate) if rate else None,
        ) as pool:
            for key in todo:
                while not pool.wait_for_room(SERVICE_SECONDS) and not self.cancel.is_set():
                    self._service(pool)
                self._service(pool)
                if self.cancel.is_set():
                    break
                self._start(pool, key)
            while not pool.wait_idle(SERVICE_SECONDS):
                self._service(pool)
            self._service(pool)
            self._sync_dirs(pool)  # every rename durable before the report says done
        for key, rec in enumerate(files):
            if rec.status in ("pending", "copying"):
                self.live.set_status(key, "interrupted")
        self.report.state = "interrupted" if self.cancel.is_set() else "done"
        self.report.finished_at = time.time()
        self.live.write_final()

    def _start(self, pool: CopyPool, key: int) -> None:
        """Check the space for one file, then hand it to the pool."""
        rec = self.report.files[key]
        dest = Path(rec.dest)
        stale = existing_copies([dest])[dest]
        reserve = self.settings.cache_reserve_bytes
        free = self.space.shortfall(pool, rec.size, reserve, stale.size if stale else 0)
        if free is not None:
            self._settle(key, "skipped_space", f"needs {rec.size} bytes + reserve {reserve}")
            self.progress.skipped_space(rec, free, reserve)
            return
        self.live.set_status(key, "copying")  # written by the first open of its source
        try:
            pool.submit(CopyJob(key, Path(rec.source), dest, rec.size, self.mtimes[rec.dest]))
            self.space.promised(rec.size)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._settle(key, "skipped_space", f"no space to preallocate: {exc.strerror}")
                self.progress.skipped_space(rec, self.space.last_free, reserve)
            else:
                self._settle(key, "failed", f"{exc.strerror}: {exc.filename or dest}")
                self.progress.failed(rec)

    def _settle(self, key: int, status: FileStatus, error: str | None) -> None:
        self.live.set_status(key, status, error)
        self.live.flush()

    def _service(self, pool: CopyPool) -> None:
        """Record finished files, log progress, and rewrite the report when a status
        changed (one write for all that finished together) or about once a second."""
        while True:
            try:
                out = self.outcomes.get_nowait()
            except queue.Empty:
                break
            self._finished(out)
        self.progress.tick(self.live.bytes_copied, self.todo_bytes)
        since = time.monotonic() - self.live.last_write
        if (self.live.dirty and since >= STATUS_WRITE_GAP) or since >= REPORT_EVERY_SECONDS:
            self.live.flush()
        if time.monotonic() - self.last_dir_sync >= DIR_SYNC_SECONDS:
            self._sync_dirs(pool)

    def _sync_dirs(self, pool: CopyPool) -> None:
        self.last_dir_sync = time.monotonic()
        for path, exc in pool.sync_dirs():
            self.progress.dir_sync_failed(str(path), exc.strerror or str(exc))

    def _finished(self, out: CopyOutcome) -> None:
        rec = self.report.files[out.key]
        self.live.measured(out.key, out.seconds, out.bytes_copied)
        if out.ok:
            self.live.set_status(out.key, "copied")
            self.progress.copied(rec, out.method)
        elif out.cancelled:
            self.live.set_status(out.key, "interrupted")
        elif out.no_space:
            self.live.set_status(out.key, "skipped_space", out.error)
            self.progress.skipped_space(rec, 0, self.settings.cache_reserve_bytes)
        else:
            self.live.set_status(out.key, "failed", out.error)
            self.progress.failed(rec)
