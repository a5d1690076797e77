"""``comfy-init warmup [CONFIG] [--list|--status|--clean|--setup-only] [--json]``.

The default warms the cache in a worker thread while the main thread watches for stop
signals (recorded by ``pid1.stop_signals``): SIGTERM/SIGINT cancel the warmup, which removes its
temp files, and the command exits 128+signal.  Exit 0 when every file is a hit or copied,
``EXIT_WARMUP_INCOMPLETE`` when any failed or did not fit, 3 for a bad config.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from comfy_init import logs, manifest, residency
from comfy_init.comfyui import model_paths
from comfy_init.errors import EXIT_OK, EXIT_WARMUP_INCOMPLETE, UsageError, signal_exit_code
from comfy_init.files.durable import is_partial
from comfy_init.pid1 import stop_signals
from comfy_init.settings import Settings
from comfy_init.warmup import engine, lock, plan

T = TypeVar("T")
POLL_SECONDS = 0.1


def run(settings: Settings, args: argparse.Namespace) -> int:
    if args.json and not (args.list or args.status):
        raise UsageError("--json: only --list and --status print JSON (add one of them)")
    if args.list:
        return _print(listing(settings, args.config), args.json, _listing_text)
    if args.status:
        return _print(status(settings, args.config), args.json, _status_text)
    if args.clean:
        return _clean(settings)
    if args.setup_only:
        return _setup_only(settings, args.config)
    return _warm(settings, args.config)


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


def _warm(settings: Settings, config: str | None) -> int:
    report, signum = in_worker(lambda cancel: engine.run(settings, config=config, cancel=cancel))
    if signum is not None:
        return signal_exit_code(signum)
    assert report is not None  # noqa: S101 - the worker returned without raising
    return (
        EXIT_WARMUP_INCOMPLETE if report.totals.failed or report.totals.skipped_space else EXIT_OK
    )


def _print(data: dict[str, Any], as_json: bool, text: Callable[[dict[str, Any]], str]) -> int:
    print(json.dumps(data, indent=1) if as_json else text(data))
    return EXIT_OK


def _cache_state(f: manifest.ModelFile, cached: plan.CacheEntry | None) -> str:
    if cached is None:
        return "absent"
    return "hit" if plan.is_hit(f, cached) else "stale"


def listing(settings: Settings, config: str | None) -> dict[str, Any]:
    """Each config line, what it expands to, size, on the volume, cached (hit/stale/absent)."""
    path = manifest.locate(settings, config)
    entries = manifest.load(path)
    exp = manifest.expand(entries, settings.models_path)
    dests = {f: plan.dest_for(settings.cache_path, f) for f in exp.files}
    cached = engine.existing_copies(list(dests.values()))
    unmatched = set(exp.unmatched)
    out = []
    for entry in entries:
        files = [
            {
                "type": f.type,
                "name": f.name,
                "size": f.size,
                "source": str(f.source),
                "dest": str(dests[f]),
                "on_volume": True,
                "cache": _cache_state(f, cached[dests[f]]),
            }
            for f in exp.files
            if f.entry == entry
        ]
        out.append(
            {
                "line": entry.origin,
                "entry": entry.text,
                "matched": entry not in unmatched,
                "files": files,
            }
        )
    return {
        "config": str(path),
        "models_path": str(settings.models_path),
        "cache_path": str(settings.cache_path),
        "entries": out,
    }


def status(settings: Settings, config: str | None) -> dict[str, Any]:
    """The cache: per configured model cached/stale/missing, files not in the config
    (extra), sizes, free space, page-cache residency."""
    path = manifest.locate(settings, config)
    exp = manifest.expand(manifest.load(path), settings.models_path)
    files: list[dict[str, Any]] = []
    configured: set[Path] = set()
    for f in exp.files:
        dest = plan.dest_for(settings.cache_path, f)
        configured.add(dest)
        cached = engine.existing_copies([dest])[dest]
        state = {"hit": "cached", "stale": "stale", "absent": "missing"}[_cache_state(f, cached)]
        files.append(_status_row(f.type, f.name, dest, state, f.size))
    cache_bytes = 0
    for dest in _cache_files(settings.cache_path):
        cache_bytes += dest.stat().st_size
        if dest not in configured and not is_partial(dest.name):
            rel = dest.relative_to(settings.cache_path)
            type_, name = rel.parts[0], "/".join(rel.parts[1:])
            files.append(_status_row(type_, name, dest, "extra", None))
    counts = {
        s: sum(1 for f in files if f["state"] == s) for s in ("cached", "stale", "missing", "extra")
    }
    return {
        "config": str(path),
        "cache_path": str(settings.cache_path),
        "cache_bytes": cache_bytes,
        "free_bytes": _free_bytes(settings.cache_path),
        "resident_bytes": sum(f["resident_bytes"] or 0 for f in files),
        "counts": counts,
        "files": files,
    }


def _status_row(
    type_: str, name: str, dest: Path, state: str, volume_size: int | None
) -> dict[str, Any]:
    res = residency.resident(dest) if state != "missing" else None
    return {
        "type": type_,
        "name": name,
        "dest": str(dest),
        "state": state,
        "volume_size": volume_size,
        "cache_size": None if res is None else res[1],
        "resident_bytes": None if res is None else res[0],
    }


def _cache_files(cache_path: Path) -> list[Path]:
    """Regular files below the cache's type folders (a file at the root is not a model)."""
    found: list[Path] = []
    for dirpath, _dirs, names in os.walk(cache_path):
        if Path(dirpath) != cache_path:
            found.extend(Path(dirpath, n) for n in sorted(names) if Path(dirpath, n).is_file())
    return sorted(found)


def _free_bytes(path: Path) -> int:
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


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
        f"removed {files} files ({_human(nbytes)}) from {cache}; "
        f"kept type folders: {', '.join(kept) or '-'}"
    )
    return EXIT_OK


def _tally(path: Path) -> tuple[int, int]:
    """(files, bytes) at or below ``path``; symlinks count as themselves."""
    if path.is_dir() and not path.is_symlink():
        found = [Path(d, n) for d, _dirs, names in os.walk(path) for n in names]
        return len(found), sum(p.lstat().st_size for p in found)
    return 1, path.lstat().st_size


def _setup_only(settings: Settings, config: str | None) -> int:
    exp = manifest.expand(manifest.load(manifest.locate(settings, config)), settings.models_path)
    path = model_paths.setup(settings, engine.types_of(exp))
    print(f"wrote {path}")
    print(f"start ComfyUI with: {shlex.join(model_paths.comfyui_flag(settings))}")
    print(
        f"ComfyUI then searches {settings.cache_path}/<type> first and "
        f"{settings.models_path}/<type> for anything not cached."
    )
    return EXIT_OK


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _listing_text(data: dict[str, Any]) -> str:
    lines = [
        f"config: {data['config']}",
        f"{'LINE':<8} {'ENTRY / FILE':<56} {'SIZE':>9}  VOLUME  CACHE",
    ]
    for e in data["entries"]:
        number = e["line"].rsplit(":", 1)[-1]
        if not e["matched"]:
            lines.append(f"{number:<8} {e['entry']:<56} {'-':>9}  no      -")
            continue
        lines.append(f"{number:<8} {e['entry']}" + ("" if e["files"] else "  (all listed above)"))
        for f in e["files"]:
            name = f"  {f['type']}/{f['name']}"
            lines.append(f"{'':<8} {name:<56} {_human(f['size']):>9}  yes     {f['cache']}")
    return "\n".join(lines)


def _status_text(data: dict[str, Any]) -> str:
    lines = [f"{'STATE':<8} {'MODEL':<56} {'SIZE':>9} {'IN RAM':>9}"]
    for f in data["files"]:
        size = f["cache_size"] if f["cache_size"] is not None else f["volume_size"]
        name = f"{f['type']}/{f['name']}"
        lines.append(
            f"{f['state']:<8} {name:<56} {_human(size):>9} {_human(f['resident_bytes']):>9}"
        )
    c = data["counts"]
    lines.append(
        f"cache {data['cache_path']}: {_human(data['cache_bytes'])} in files, "
        f"{_human(data['free_bytes'])} free, {_human(data['resident_bytes'])} in page cache; "
        f"{c['cached']} cached, {c['stale']} stale, {c['missing']} missing, "
        f"{c['extra']} not in the config"
    )
    return "\n".join(lines)
