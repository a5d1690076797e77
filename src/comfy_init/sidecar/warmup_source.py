"""Warmup metrics, read from the warmup report on every scrape.

The report is rewritten atomically whenever a file changes state, so reading it on each
scrape follows a background warmup live.  Pure core: ``families(report, now)``; the edge
(``WarmupSource``) only reads the file.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from prometheus_client.core import Metric

from comfy_init.manifest.lines import SKIP_REASONS
from comfy_init.sidecar import catalog, families
from comfy_init.warmup.report import FILE_STATUSES, RUN_STATES, Report, read_report


def families_of(report: Report, now: float) -> list[Metric]:
    """Every warmup metric for ``report`` at unix time ``now``."""
    count: dict[tuple[str, str], float] = defaultdict(float)
    size: dict[tuple[str, str], float] = defaultdict(float)
    types: list[str] = []
    for record in report.files:
        if record.type not in types:
            types.append(record.type)
        count[record.type, record.status] += 1
        size[record.type, record.status] += record.size
    grid = [(t, s) for t in types for s in FILE_STATUSES]
    files = families.labelled("warmup_files", ((key, count[key]) for key in grid))
    sizes = families.labelled("warmup_bytes", ((key, size[key]) for key in grid))

    copied_bytes = float(sum(r.bytes_copied for r in report.files))
    if report.finished_at is not None:
        seconds = max(0.0, report.totals.seconds or report.finished_at - report.started_at)
    else:
        seconds = max(0.0, now - report.started_at)
    durations = [r.seconds for r in report.files if r.status == "copied"]
    buckets, total = families.cumulative_buckets(durations, catalog.COPY_SECONDS_BUCKETS)
    histogram = families.histogram("warmup_copy_duration_seconds")
    histogram.add_metric([], buckets, total)

    reasons = [s.reason for s in report.skipped] + ["user_yaml"] * len(report.user_yaml_problems)
    out: list[Metric] = [
        files,
        sizes,
        families.labelled(
            "warmup_skipped_lines",
            (((r,), float(reasons.count(r))) for r in (*SKIP_REASONS, "user_yaml")),
        ),
        families.single("warmup_copied_bytes", copied_bytes),
        histogram,
        families.single("warmup_duration_seconds", seconds),
        families.single(
            "warmup_throughput_bytes_per_second", copied_bytes / seconds if seconds > 0 else 0.0
        ),
        families.one_hot("warmup_state", RUN_STATES, report.state),
        families.single("warmup_started_timestamp_seconds", report.started_at),
    ]
    if report.finished_at is not None:
        out.append(families.single("warmup_finished_timestamp_seconds", report.finished_at))
    chosen = report.auto or {}
    out += [
        families.single("warmup_auto_models", float(chosen.get("models", 0))),
        families.single("warmup_auto_files", float(sum(r.auto for r in report.files))),
        families.single("warmup_auto_bytes", float(sum(r.size for r in report.files if r.auto))),
    ]
    return out


class WarmupSource:
    """Source ``warmup_report``: the report at ``path``.  No report (warmup skipped, not yet
    started) is not an error: the source is up and has no warmup metrics."""

    name = "warmup_report"

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self, now: float) -> list[Metric]:
        report = read_report(self.path)  # raises ValueError on a corrupt file
        if report is None:
            return []
        return families_of(report, now)

    def state(self) -> str | None:
        """The report's run state, or None if there is no (readable) report."""
        try:
            report = read_report(self.path)
        except (OSError, ValueError, TypeError):
            return None
        return None if report is None else report.state
