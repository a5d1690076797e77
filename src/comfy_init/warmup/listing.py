"""``comfy-init warmup --list``, ``--status`` and ``--suggest``: what each config line
expands to (``@auto`` included), where each file was found, what was skipped and why, what
the cache holds (cached, stale, missing, extra; sizes, free space, page-cache residency),
and the config the usage journals suggest, as data for ``--json`` and as text."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from comfy_init import residency
from comfy_init.files.durable import is_partial
from comfy_init.manifest import lines
from comfy_init.manifest.expand import ModelFile, SearchPath
from comfy_init.manifest.lines import Entry
from comfy_init.settings import Settings
from comfy_init.usage import auto, suggest
from comfy_init.warmup import engine, plan, records


def _cache_state(f: ModelFile, cached: plan.CacheEntry | None) -> str:
    if cached is None:
        return "absent"
    return "hit" if plan.is_hit(f, cached) else "stale"


def listing(settings: Settings, config: str | None) -> dict[str, Any]:
    """Each config line, what it expands to, where each file was found, size, cached
    (hit/stale/absent); the lines skipped and the problems of the user's YAML."""
    path = lines.locate(settings, config)
    search = SearchPath.of(settings)
    config_lines = lines.load_lines(path, search.anchors())
    entries = config_lines.entries
    expanded = auto.expand_config(entries, settings, now=time.time(), search=search)
    exp = expanded.expansion
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
                "found_in": str(f.folder),
                "dest": str(dests[f]),
                "on_volume": True,
                "cache": _cache_state(f, cached[dests[f]]),
                "auto": f.entry.auto,
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
        "skipped": [asdict(s) for s in records.skipped([*config_lines.skipped, *exp.skipped])],
        "user_yaml_problems": list(search.problems),
        "auto": None if expanded.auto is None else expanded.auto.summary(),
    }


def status(settings: Settings, config: str | None) -> dict[str, Any]:
    """The cache: per configured model cached/stale/missing, files not in the config
    (extra), sizes, free space, page-cache residency."""
    path = lines.locate(settings, config)
    search = SearchPath.of(settings)
    entries = lines.load_lines(path, search.anchors()).entries
    exp = auto.expand_config(entries, settings, now=time.time(), search=search).expansion
    files: list[dict[str, Any]] = []
    configured: set[Path] = set()
    for f in exp.files:
        dest = plan.dest_for(settings.cache_path, f)
        configured.add(dest)
        cached = engine.existing_copies([dest])[dest]
        state = {"hit": "cached", "stale": "stale", "absent": "missing"}[_cache_state(f, cached)]
        files.append(_status_row(f.type, f.name, dest, state, f.size, by_auto=f.entry.auto))
    cache_bytes = 0
    for dest in _cache_files(settings.cache_path):
        cache_bytes += dest.stat().st_size
        if dest not in configured and not is_partial(dest.name):
            rel = dest.relative_to(settings.cache_path)
            type_, name = rel.parts[0], "/".join(rel.parts[1:])
            files.append(_status_row(type_, name, dest, "extra", None, by_auto=False))
    counts = {
        s: sum(1 for f in files if f["state"] == s) for s in ("cached", "stale", "missing", "extra")
    }
    return {
        "config": str(path),
        "cache_path": str(settings.cache_path),
        "cache_bytes": cache_bytes,
        "free_bytes": auto.free_bytes(settings.cache_path),
        "resident_bytes": sum(f["resident_bytes"] or 0 for f in files),
        "counts": counts,
        "files": files,
    }


def _status_row(
    type_: str, name: str, dest: Path, state: str, volume_size: int | None, *, by_auto: bool
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
        "auto": by_auto,
    }


def _cache_files(cache_path: Path) -> list[Path]:
    """Regular files below the cache's type folders (a file at the root is not a model)."""
    found: list[Path] = []
    for dirpath, _dirs, names in os.walk(cache_path):
        if Path(dirpath) != cache_path:
            found.extend(Path(dirpath, n) for n in sorted(names) if Path(dirpath, n).is_file())
    return sorted(found)


def suggestion(settings: Settings) -> dict[str, Any]:
    """The config the usage journals suggest: every model of the window on the volume, most
    used first, and which fit the cache (``WARMUP_AUTO_MAX_MB``, free space less
    ``CACHE_RESERVE_MB``; an up-to-date cached copy takes no space)."""
    learned = auto.learn(settings.usage_path, settings.warmup_auto_days, time.time())
    free = auto.free_bytes(settings.cache_path)
    plan = auto.plan(
        learned,
        search=SearchPath.of(settings),
        line=Entry("", "", "--suggest", auto=True),
        listed=set(),
        budget=auto.Budget(
            settings.warmup_auto_max_bytes or None, free, settings.cache_reserve_bytes
        ),
        is_cached=auto.cached_in(settings.cache_path),
    )
    return suggest.suggestion(
        plan.candidates,
        plan.selection,
        usage_dir=str(settings.usage_path),
        window_days=settings.warmup_auto_days,
        free_bytes=free,
        reserve_bytes=settings.cache_reserve_bytes,
        max_bytes=settings.warmup_auto_max_bytes or None,
        skipped=plan.skipped,
        dropped={k: v for k, v in auto.counts(plan).items() if k != auto.LISTED},
    )


def suggestion_text(data: dict[str, Any]) -> str:
    return suggest.render(data, human)


def human(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def listing_text(data: dict[str, Any]) -> str:
    rows = [
        f"config: {data['config']}",
        f"{'LINE':<8} {'ENTRY / FILE':<56} {'SIZE':>9}  VOLUME  CACHE   FOUND IN",
    ]
    for e in data["entries"]:
        number = e["line"].rsplit(":", 1)[-1]
        if not e["matched"]:
            rows.append(f"{number:<8} {e['entry']:<56} {'-':>9}  no      -")
            continue
        rows.append(f"{number:<8} {e['entry']}" + _note(e, data["auto"]))
        for f in e["files"]:
            name = f"  {f['type']}/{f['name']}"
            rows.append(
                f"{'':<8} {name:<56} {human(f['size']):>9}  yes     {f['cache']:<7} {f['found_in']}"
            )
    rows += [f"skipped: {s['error']}" for s in data["skipped"]]
    rows += [f"not used: {p}" for p in data["user_yaml_problems"]]
    return "\n".join(rows)


def _note(entry: dict[str, Any], chosen: dict[str, Any] | None) -> str:
    if entry["entry"] == lines.AUTO_LINE and chosen is not None:
        return (
            f"  ({chosen['models']} models recorded, {chosen['files']} chosen, "
            f"{chosen['left_out']} over the budget)"
        )
    return "" if entry["files"] else "  (all listed above)"


def status_text(data: dict[str, Any]) -> str:
    rows = [f"{'STATE':<8} {'MODEL':<56} {'SIZE':>9} {'IN RAM':>9}"]
    for f in data["files"]:
        size = f["cache_size"] if f["cache_size"] is not None else f["volume_size"]
        name = f"{f['type']}/{f['name']}" + (" (@auto)" if f["auto"] else "")
        rows.append(f"{f['state']:<8} {name:<56} {human(size):>9} {human(f['resident_bytes']):>9}")
    c = data["counts"]
    rows.append(
        f"cache {data['cache_path']}: {human(data['cache_bytes'])} in files, "
        f"{human(data['free_bytes'])} free, {human(data['resident_bytes'])} in page cache; "
        f"{c['cached']} cached, {c['stale']} stale, {c['missing']} missing, "
        f"{c['extra']} not in the config"
    )
    return "\n".join(rows)
