"""Every metric the sidecar serves (name, type, help, labels, unit): the one source for the
collectors (``sidecar/families.py``), the README table (``markdown_table()``, kept in step by
a test) and the checks of the Grafana dashboard and alert rules (``NAMES``).  Conventions:
one prefix (``comfyinit_``), base units, ``_total`` on counters, the unit as a suffix;
``promtool check metrics`` finds nothing to say."""

from __future__ import annotations

from comfy_init.sidecar import usage_catalog
from comfy_init.sidecar.metric import PREFIX, Metric
from comfy_init.sidecar.metric import entry as _m

# Copy time of one model file: well under a second (a LoRA) to many minutes (a 20-40 GB model).
COPY_SECONDS_BUCKETS: tuple[float, ...] = (
    *(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0),
    *(120.0, 300.0, 600.0, 1200.0, 2400.0),
)

# Values of the label ``source`` of comfyinit_source_up: each thing the sidecar reads.
SOURCES: tuple[str, ...] = (
    *("warmup_report", "readahead_report", "cache", "supervisord", "comfyui", "inotify"),
)


METRICS: tuple[Metric, ...] = (
    # --- the sidecar itself
    _m(
        "build_info", "gauge", "Always 1; the comfy-init version serving the metrics.", ("version",)
    ),
    _m(
        "source_up",
        "gauge",
        "1 if the sidecar's last read of this source worked, 0 if it failed "
        "(its metrics are then absent).",
        ("source",),
    ),
    # --- warmup, from the warmup report
    _m(
        "warmup_files",
        "gauge",
        "Files in the last (or running) warmup, by model type and outcome "
        "(hit, copied, skipped_space, missing, failed, interrupted, pending, copying).",
        ("type", "outcome"),
    ),
    _m(
        "warmup_bytes",
        "gauge",
        "Size of the files in the last (or running) warmup, by model type and outcome.",
        ("type", "outcome"),
        "bytes",
    ),
    _m(
        "warmup_skipped_lines",
        "gauge",
        "Config lines the last (or running) warmup left out, by reason: invalid, link_outside "
        "(a symlink off the volume), link_loop, user_yaml (a part of extra_model_paths.yaml).",
        ("reason",),
    ),
    _m(
        "warmup_copied_bytes",
        "gauge",
        "Bytes written to the cache by the last (or running) warmup, copies in progress included.",
        (),
        "bytes",
    ),
    _m(
        "warmup_copy_duration_seconds",
        "histogram",
        "Wall time of each file copied by the last (or running) warmup.",
        (),
        "seconds",
    ),
    _m(
        "warmup_duration_seconds",
        "gauge",
        "Wall time of the last warmup, or time since the running one started.",
        (),
        "seconds",
    ),
    _m(
        "warmup_throughput_bytes_per_second",
        "gauge",
        "Bytes copied per second of wall time by the last (or running) warmup.",
        (),
        "bytes_per_second",
    ),
    _m(
        "warmup_state",
        "gauge",
        "1 for the state of the last warmup (running, done, interrupted, failed), 0 for the "
        "others.",
        ("state",),
    ),
    _m(
        "warmup_started_timestamp_seconds",
        "gauge",
        "Unix time the last (or running) warmup started.",
        (),
        "seconds",
    ),
    _m(
        "warmup_finished_timestamp_seconds",
        "gauge",
        "Unix time the last warmup finished; absent while it runs.",
        (),
        "seconds",
    ),
    # --- the cache on local disk
    _m(
        "cache_filesystem_size_bytes",
        "gauge",
        "Size of the filesystem holding the cache.",
        (),
        "bytes",
    ),
    _m(
        "cache_filesystem_free_bytes",
        "gauge",
        "Free space on the filesystem holding the cache (available to unprivileged users).",
        (),
        "bytes",
    ),
    _m("cache_files", "gauge", "Model files in the cache, by model type.", ("type",)),
    _m(
        "cache_model_bytes",
        "gauge",
        "Size of the model files in the cache, by model type.",
        ("type",),
        "bytes",
    ),
    _m(
        "cache_resident_bytes",
        "gauge",
        "Bytes of the cached model files held in the page cache (RAM), by model type.",
        ("type",),
        "bytes",
    ),
    # --- model opens: is ComfyUI really using the cache?
    _m(
        "model_opens_total",
        "counter",
        "Opens of model files by anyone but comfy-init itself, by model type and location "
        "(cache: local copy, volume: network volume).",
        ("type", "location"),
    ),
    _m(
        "model_opens_discounted_total",
        "counter",
        "Opens of model files made by comfy-init itself (warmup copies, residency checks, "
        "write-back) and therefore not counted in comfyinit_model_opens_total.",
        ("location", "by"),
    ),
    _m(
        "inotify_watches",
        "gauge",
        "Directories watched for model opens, by location.",
        ("location",),
    ),
    _m(
        "inotify_overflows_total",
        "counter",
        "Times the kernel's inotify queue overflowed (opens in between were not counted).",
    ),
    # --- ComfyUI
    _m(
        "comfyui_process_state",
        "gauge",
        "1 for ComfyUI's current supervisord state (STOPPED, STARTING, RUNNING, BACKOFF, "
        "STOPPING, EXITED, FATAL, UNKNOWN), 0 for the others.",
        ("state",),
    ),
    _m("comfyui_installed", "gauge", "1 if COMFYUI_PATH holds main.py; 0 while waiting for it."),
    _m(
        "comfyui_uptime_seconds",
        "gauge",
        "Seconds since supervisord last started ComfyUI; 0 when it is not running.",
        (),
        "seconds",
    ),
    _m(
        "comfyui_restarts_total",
        "counter",
        "ComfyUI (re)starts seen by the sidecar after its first look (crashes, watchdog, "
        "manual restarts).",
    ),
    _m("comfyui_http_up", "gauge", "1 if ComfyUI's last HTTP probe (/system_stats) answered."),
    _m(
        "comfyui_http_probe_duration_seconds",
        "gauge",
        "Time ComfyUI took to answer the last HTTP probe.",
        (),
        "seconds",
    ),
    _m(
        "comfyui_queue_jobs",
        "gauge",
        "Jobs in ComfyUI's queue, by state (running, pending).",
        ("state",),
    ),
    _m(
        "comfyui_vram_total_bytes",
        "gauge",
        "Total VRAM of each device ComfyUI uses.",
        ("device", "index"),
        "bytes",
    ),
    _m(
        "comfyui_vram_free_bytes",
        "gauge",
        "Free VRAM of each device ComfyUI uses.",
        ("device", "index"),
        "bytes",
    ),
    _m("comfyui_ram_total_bytes", "gauge", "Total RAM as ComfyUI reports it.", (), "bytes"),
    _m("comfyui_ram_free_bytes", "gauge", "Free RAM as ComfyUI reports it.", (), "bytes"),
    # --- watchdog
    _m(
        "watchdog_restarts_total",
        "counter",
        "Restarts of a ComfyUI that ran but stopped answering HTTP, made by the watchdog.",
    ),
    _m(
        "watchdog_failed_probes",
        "gauge",
        "Consecutive failed HTTP probes of a running ComfyUI, as the watchdog counts them.",
    ),
    _m("watchdog_enabled", "gauge", "1 if the watchdog is on (WATCHDOG=1)."),
    # --- readahead of what ComfyUI read at its last start, from the readahead report
    _m(
        "readahead_files",
        "gauge",
        "Listed files read ahead at this start, by outcome (read; changed: read, changed "
        "since listed; missing).",
        ("outcome",),
    ),
    _m("readahead_bytes", "gauge", "Bytes read ahead into the page cache.", (), "bytes"),
    _m("readahead_duration_seconds", "gauge", "Wall time of the readahead.", (), "seconds"),
    _m(
        "readahead_opens",
        "gauge",
        "ComfyUI's opens of volume files before its first answer, by whether the readahead had "
        "read the file (prefetched), not yet (early), or did not list it (unlisted).",
        ("found",),
    ),
    # --- write-back of downloads
    _m(
        "writeback_files_total",
        "counter",
        "Model files that appeared in the cache (downloads) copied back to the volume, "
        "by model type.",
        ("type",),
    ),
    _m(
        "writeback_bytes_total",
        "counter",
        "Bytes copied back from the cache to the volume, by model type.",
        ("type",),
        "bytes",
    ),
    _m(
        "writeback_failures_total",
        "counter",
        "Failed copies of downloads back to the volume, by model type (retried later).",
        ("type",),
    ),
    _m(
        "writeback_pending_files",
        "gauge",
        "Downloads in the cache waiting to be copied back (still being written, or to retry).",
    ),
    # --- the learned warm list
    *usage_catalog.METRICS,
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
NAMES: frozenset[str] = frozenset(BY_NAME)


def get(name: str) -> Metric:
    """The catalog entry for ``name`` (with or without the prefix)."""
    return BY_NAME[name if name.startswith(PREFIX) else PREFIX + name]


def series_names(metric: Metric) -> tuple[str, ...]:
    """Names of the samples a metric produces in the text format."""
    if metric.type == "histogram":
        return (f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count")
    return (metric.name,)


def markdown_table() -> str:
    """The README metrics table: name | type | labels | meaning."""
    rows = ["| name | type | labels | meaning |", "|---|---|---|---|"]
    for m in METRICS:
        labels = ", ".join(f"`{label}`" for label in m.labels)
        rows.append(f"| `{m.name}` | {m.type} | {labels} | {m.help} |")
    return "\n".join(rows) + "\n"
