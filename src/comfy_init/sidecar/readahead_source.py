"""Readahead metrics, read from the readahead report on every scrape.

Pure core: ``families_of(report)``; the edge (``ReadaheadSource``) only reads the file.  No
report (before the first start wrote one) and ``READAHEAD=0`` give no metrics.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.core import Metric

from comfy_init.readahead.report import Report, read_if_present
from comfy_init.sidecar import families


def families_of(report: Report) -> list[Metric]:
    if report.state == "off":
        return []
    files = [
        (("read",), float(report.files - report.changed)),
        (("changed",), float(report.changed)),
        (("missing",), float(report.missing)),
    ]
    opens = [
        (("prefetched",), float(report.opens_prefetched)),
        (("early",), float(report.opens_early)),
        (("unlisted",), float(report.opens_unlisted)),
    ]
    return [
        families.labelled("readahead_files", files),
        families.single("readahead_bytes", float(report.bytes)),
        families.single("readahead_duration_seconds", report.seconds),
        families.labelled("readahead_opens", opens),
    ]


class ReadaheadSource:
    """Source ``readahead_report``: the report at ``path`` (ValueError when corrupt)."""

    name = "readahead_report"

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self, _now: float) -> tuple[list[Metric], bool]:
        report = read_if_present(self.path)
        return ([] if report is None else families_of(report)), True
