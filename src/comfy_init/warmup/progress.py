"""What a warmup tells people while it runs: a log line per file, periodic progress lines on
long copies, a progress bar when stderr is a terminal, and a final summary line.

The numbers (MB/s, ETA, the bar) are pure functions; ``Progress`` only decides when to
speak.  MB are decimal (10^6 bytes), as ``WARMUP_MAX_MBPS``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from comfy_init import logs
from comfy_init.warmup.report import FileRecord, Report

MB = 1_000_000
LOG_EVERY_SECONDS = 5.0  # a warmup_progress line this often while bytes are being copied
BAR_EVERY_SECONDS = 0.2


def mb_per_s(nbytes: int, seconds: float) -> float:
    return round(nbytes / MB / seconds, 1) if seconds > 0 else 0.0


def eta_seconds(done: int, total: int, bytes_per_second: float) -> float | None:
    """Seconds until ``total`` at the current rate; None while the rate is unknown."""
    if bytes_per_second <= 0:
        return None
    return max(0.0, (total - done) / bytes_per_second)


def bar_line(done: int, total: int, bytes_per_second: float, width: int = 30) -> str:
    """``[#####.....]  42%  1234/2900 MB  210.3 MB/s  ETA 8s``."""
    frac = min(1.0, done / total) if total > 0 else 1.0
    filled = int(frac * width)
    eta = eta_seconds(done, total, bytes_per_second)
    eta_text = "--" if eta is None else f"{eta:.0f}s"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {frac * 100:3.0f}%  "
        f"{done // MB}/{total // MB} MB  {bytes_per_second / MB:.1f} MB/s  ETA {eta_text}"
    )


class Progress:
    """Logs the warmup's events; draws a bar on ``stream`` when it is a terminal."""

    def __init__(
        self,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.bar = self.stream.isatty()
        self.clock = clock
        self.log = logs.get_logger("warmup")
        self._started = clock()
        self._last_log = self._started
        self._last_bar = 0.0
        self._bar_shown = False

    def _emit(self, level: str, event: str, **kw: Any) -> None:
        if self._bar_shown:  # a log line must not land in the middle of the bar
            self.stream.write("\r\x1b[K")
            self._bar_shown = False
        getattr(self.log, level)(event, **kw)

    def started(self, config: str, files: int, to_copy: int, bytes_to_copy: int) -> None:
        self._emit(
            "info",
            "warmup_started",
            config=config,
            files=files,
            to_copy=to_copy,
            bytes_to_copy=bytes_to_copy,
        )

    def problems(self, report: Report) -> None:
        """What the warmup leaves out before it starts: bad config lines, refused links,
        bad parts of the user's extra_model_paths.yaml."""
        for skip in report.skipped:
            self._emit("warning", "config_line_skipped", line=skip.line, reason=skip.reason,
                       error=skip.error)  # fmt: skip
        for problem in report.user_yaml_problems:
            self._emit("warning", "user_model_paths_problem", error=problem)

    def partial_removed(self, path: str) -> None:
        self._emit("info", "partial_removed", path=path)

    def cached(self, rec: FileRecord) -> None:
        self._emit("info", "file_cached", path=rec.dest, bytes=rec.size, line=rec.line)

    def copied(self, rec: FileRecord, method: str) -> None:
        self._emit(
            "info",
            "file_copied",
            path=rec.dest,
            bytes=rec.bytes_copied,
            seconds=round(rec.seconds, 3),
            mb_per_s=mb_per_s(rec.bytes_copied, rec.seconds),
            method=method,
        )

    def skipped_space(self, rec: FileRecord, free_bytes: int, reserve_bytes: int) -> None:
        self._emit(
            "warning",
            "file_skipped_space",
            path=rec.source,
            bytes=rec.size,
            free_bytes=max(0, free_bytes),
            reserve_bytes=reserve_bytes,
            line=rec.line,
            error=rec.error,
        )

    def dir_sync_failed(self, path: str, error: str) -> None:
        self._emit("warning", "dir_sync_failed", path=path, error=error)

    def failed(self, rec: FileRecord) -> None:
        self._emit("error", "file_failed", path=rec.source, error=rec.error, line=rec.line)

    def unmatched(self, rec: FileRecord) -> None:
        self._emit("warning", "pattern_unmatched", pattern=f"{rec.type}/{rec.name}", line=rec.line)

    def tick(self, done: int, total: int) -> None:
        """Called often while copying: ``done`` of ``total`` bytes to copy in this run."""
        now = self.clock()
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        if now - self._last_log >= LOG_EVERY_SECONDS and done < total:
            self._last_log = now
            eta = eta_seconds(done, total, rate)
            self._emit(
                "info",
                "warmup_progress",
                done_bytes=done,
                total_bytes=total,
                mb_per_s=round(rate / MB, 1),
                eta_seconds=None if eta is None else round(eta),
            )
        if self.bar and now - self._last_bar >= BAR_EVERY_SECONDS:
            self._last_bar = now
            self.stream.write("\r\x1b[K" + bar_line(done, total, rate))
            self.stream.flush()
            self._bar_shown = True

    def finished(self, report: Report) -> None:
        t = report.totals
        self._emit(
            "info",
            "warmup_finished",
            state=report.state,
            files=t.files,
            hit=t.hit,
            copied=t.copied,
            skipped_space=t.skipped_space,
            missing=t.missing,
            failed=t.failed,
            interrupted=t.interrupted,
            skipped_lines=len(report.skipped),
            bytes_total=t.bytes_total,
            bytes_copied=t.bytes_copied,
            seconds=round(t.seconds, 3),
            mb_per_s=mb_per_s(t.bytes_copied, t.seconds),
        )
