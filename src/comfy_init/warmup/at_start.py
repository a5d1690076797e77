"""The warmup step of ``comfy-init start``: warm under PID 1 (blocking, ``--warmup-only``, or
once ComfyUI appears on the volume), say what the warmup failed on or left out, and write
the cache's ``extra_model_paths.yaml`` for the config.

A warmup never keeps ComfyUI from starting: a failed one is logged (``warmup_failed``), one
that skipped config lines or parts of the user's YAML is logged with each ``file:line``
(``warmup_skipped_lines``), and ComfyUI then reads those models from where it finds them.
"""

from __future__ import annotations

import threading
import time

from comfy_init import logs
from comfy_init.comfyui import model_paths
from comfy_init.errors import ComfyInitError, ConfigError
from comfy_init.manifest import lines
from comfy_init.manifest.lines import Entry
from comfy_init.manifest.search_path import SearchPath
from comfy_init.pid1 import supervise
from comfy_init.pid1.children import Reaper
from comfy_init.settings import Settings
from comfy_init.usage import auto
from comfy_init.wakeup import Wakeup
from comfy_init.warmup.report import Report

log = logs.get_logger("boot")

# How long a cancelled warmup may take to remove its temp files; docker's grace is 10 s.
WARMUP_CANCEL_SECONDS = 8.0


def warm(settings: Settings, cancel: threading.Event) -> Report:
    from comfy_init.warmup import engine  # the copier's threads start only when warming

    return engine.run(settings, config=None, cancel=cancel)


def under_pid1(settings: Settings, reaper: Reaper, wakeup: Wakeup) -> supervise.Finished[Report]:
    """Warm in a worker thread while the main thread takes signals and reaps."""
    return supervise.run_worker(
        lambda cancel: warm(settings, cancel),
        name="warmup",
        reaper=reaper,
        wakeup=wakeup,
        cancel_grace=WARMUP_CANCEL_SECONDS,
    )


def failed(error: BaseException) -> None:
    log.error(
        "warmup_failed",
        error=str(error),
        exc_info=None if isinstance(error, ComfyInitError) else error,
        effect="ComfyUI starts anyway and reads models from the volume",
    )


def left_out(report: Report) -> None:
    """Log what a finished warmup skipped (nothing when it skipped nothing)."""
    problems = report.config_problems()
    if problems:
        log.error(
            "warmup_skipped_lines",
            problems=problems,
            effect="ComfyUI starts; those models load from where ComfyUI finds them, "
            "everything else was warmed",
        )


def tell(finished: supervise.Finished[Report]) -> None:
    """Log what a warmup that ran to its end failed on or left out."""
    if finished.error is not None:
        failed(finished.error)
    elif finished.value is not None:
        left_out(finished.value)


def config_entries(settings: Settings) -> list[Entry]:
    """The warmup config's good entries (a bad line is left out: the warmup reports it);
    none when there is no readable config (ComfyUI still starts, and then reads every
    model from the volume)."""
    try:
        path = lines.locate(settings, None)
        return lines.load_lines(path, SearchPath.of(settings).anchors()).entries
    except ConfigError as exc:
        log.info("model_paths_without_config", reason=str(exc))
        return []


def write_model_paths(settings: Settings) -> None:
    """Write the cache's YAML for the config (ComfyUI is started with it, so it must exist)."""
    entries = config_entries(settings)
    model_paths.write(settings, entries, auto.model_types(entries, settings, time.time()))
