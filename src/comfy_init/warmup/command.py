"""``comfy-init warmup [CONFIG] [--list|--status|--clean|--setup-only|--copy-only] [--json]``.

The default warms the cache in a worker thread while the main thread watches for stop
signals (recorded by ``pid1.stop_signals``): SIGTERM/SIGINT cancel the warmup, which removes its
temp files, and the command exits 128+signal.  Then it writes the cache's
``extra_model_paths.yaml``, unless ``--copy-only`` (how ``comfy-init start`` runs the
background warmup: ComfyUI already runs on the file written at start).  Exit 0 when every
file is a hit or copied, ``EXIT_WARMUP_INCOMPLETE`` when any failed or did not fit, 3 when a
config line (or a part of the user's ``extra_model_paths.yaml``) was skipped: the rest is
warmed first, then the problems are raised together.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from comfy_init import logs
from comfy_init.comfyui import model_paths
from comfy_init.errors import (
    EXIT_OK,
    EXIT_WARMUP_INCOMPLETE,
    ConfigError,
    UsageError,
    signal_exit_code,
)
from comfy_init.manifest import lines
from comfy_init.manifest.search_path import SearchPath
from comfy_init.pid1 import stop_signals
from comfy_init.settings import Settings
from comfy_init.usage import auto
from comfy_init.warmup import engine, listing, lock

T = TypeVar("T")
POLL_SECONDS = 0.1


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.json and not (args.list or args.status or args.suggest):
        raise UsageError("--json: only --list, --status and --suggest print JSON (add one of them)")
    if args.suggest:
        return _print(listing.suggestion(settings), args.json, listing.suggestion_text)
    if args.list:
        return _print(listing.listing(settings, args.config), args.json, listing.listing_text)
    if args.status:
        return _print(listing.status(settings, args.config), args.json, listing.status_text)
    if args.clean:
        return _clean(settings)
    if args.setup_only:
        return _setup_only(settings, args.config)
    return _warm(settings, args.config, model_paths_too=not args.copy_only)


def in_worker(work: Callable[[threading.Event], T]) -> tuple[T | None, int | None]:
    """Run ``work(cancel)`` in a thread; a stop signal sets ``cancel``.  Returns the result
    and the signal that stopped it (None if none did)."""
    cancel = threading.Event()
    box: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            box.append(work(cancel))
        except BaseException as exc:  # handed to the main thread, which raises it
            failure.append(exc)

    thread = threading.Thread(target=target, name="warmup")
    thread.start()
    stopped_by: int | None = None
    while thread.is_alive():
        thread.join(POLL_SECONDS)
        signum = stop_signals.take()
        if signum is not None and stopped_by is None:
            stopped_by = signum
            logs.get_logger("warmup").warning("warmup_stopping", signal=signal.Signals(signum).name)
            cancel.set()
    if failure:
        raise failure[0]
    return (box[0] if box else None), stopped_by


def _warm(settings: Settings, config: str | None, *, model_paths_too: bool) -> int:
    report, signum = in_worker(lambda cancel: engine.run(settings, config=config, cancel=cancel))
    if signum is not None:
        return signal_exit_code(signum)
    assert report is not None  # noqa: S101 - the worker returned without raising
    if model_paths_too:
        _write_model_paths(settings, config)
    problems = report.config_problems()
    if problems:
        raise ConfigError(problems)
    return (
        EXIT_WARMUP_INCOMPLETE if report.totals.failed or report.totals.skipped_space else EXIT_OK
    )


def _print(data: dict[str, Any], as_json: bool, text: Callable[[dict[str, Any]], str]) -> int:
    print(json.dumps(data, indent=1) if as_json else text(data))
    return EXIT_OK


def _clean(settings: Settings) -> int:
    """Empty every ``$CACHE_PATH/<type>/`` but keep the folders: ComfyUI has them registered."""
    cache = settings.cache_path

    def work(cancel: threading.Event) -> tuple[int, int, list[str]]:
        files = nbytes = 0
        kept: list[str] = []
        with lock.hold(settings.warmup_lock_path, cancel) as held:
            if not held or not cache.is_dir():
                return 0, 0, []
            for type_dir in sorted(p for p in cache.iterdir() if p.is_dir() and not p.is_symlink()):
                kept.append(type_dir.name)
                for child in list(type_dir.iterdir()):
                    n, size = _tally(child)
                    files, nbytes = files + n, nbytes + size
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        return files, nbytes, kept

    result, signum = in_worker(work)
    if signum is not None:
        return signal_exit_code(signum)
    files, nbytes, kept = result or (0, 0, [])
    logs.get_logger("warmup").info("cache_cleaned", path=str(cache), files=files, bytes=nbytes)
    print(
        f"removed {files} files ({listing.human(nbytes)}) from {cache}; "
        f"kept type folders: {', '.join(kept) or '-'}"
    )
    return EXIT_OK


def _tally(path: Path) -> tuple[int, int]:
    """(files, bytes) at or below ``path``; symlinks count as themselves."""
    if path.is_dir() and not path.is_symlink():
        found = [Path(d, n) for d, _dirs, names in os.walk(path) for n in names]
        return len(found), sum(p.lstat().st_size for p in found)
    return 1, path.lstat().st_size


def _write_model_paths(settings: Settings, config: str | None) -> Path:
    """Write the cache's YAML for the config's good lines (a missing config is an error)."""
    anchors = SearchPath.of(settings).anchors()
    entries = lines.load_lines(lines.locate(settings, config), anchors).entries
    return model_paths.write(settings, entries, auto.model_types(entries, settings, time.time()))


def _setup_only(settings: Settings, config: str | None) -> int:
    path = _write_model_paths(settings, config)
    print(f"wrote {path}")
    print(f"start ComfyUI with: {shlex.join(model_paths.comfyui_flag(settings))}")
    print(
        f"ComfyUI then searches {settings.cache_path}/<type> first and "
        f"{settings.models_path}/<type> for anything not cached."
    )
    return EXIT_OK
