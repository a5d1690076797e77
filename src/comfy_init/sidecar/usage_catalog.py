"""The learned warm list's metrics (part of ``catalog.METRICS``): what the sidecar records
in its usage journal, and what ``@auto`` chose in the last warmup (from its report)."""

from __future__ import annotations

from comfy_init.sidecar.metric import Metric, entry

METRICS: tuple[Metric, ...] = (
    entry(
        "usage_records_written_total",
        "counter",
        "Usage records this pod appended to its journal on the volume (ComfyUI's model opens, "
        "and the pod's boot).",
    ),
    entry(
        "usage_journal_write_errors_total",
        "counter",
        "Failed writes of this pod's usage journal (volume full, read-only or gone); the "
        "records wait for the next write that works.",
    ),
    entry(
        "warmup_auto_models",
        "gauge",
        "Models the usage journals of all pods hold within WARMUP_AUTO_DAYS, as the last "
        "warmup read them (0 without an @auto line).",
    ),
    entry(
        "warmup_auto_files",
        "gauge",
        "Files the @auto line chose in the last (or running) warmup.",
    ),
    entry(
        "warmup_auto_bytes",
        "gauge",
        "Size of the files the @auto line chose in the last (or running) warmup.",
        (),
        "bytes",
    ),
)
