"""Decide, per model file, whether the cache already holds it (hit) or it must be copied.

Pure: the caller stats the cache copies and the free space; nothing here touches disk.

A cache copy is up to date when it has the source's size and modification time.  The copier
sets the copy's mtime to the source's, but the cache filesystem may keep less precision than
the volume: a copy whose ``mtime_ns`` is a whole number of seconds (or microseconds) is
compared with the source at that granularity.  The price is that a source rewritten with
the same size within the same second (or microsecond) on such a filesystem looks unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from comfy_init.manifest.expand import ModelFile

_SECOND_NS = 1_000_000_000
_MICROSECOND_NS = 1_000

Action = Literal["hit", "copy"]


@dataclass(frozen=True)
class CacheEntry:
    """Stat of an existing cache copy."""

    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Step:
    file: ModelFile
    dest: Path  # cache_path / type / name
    action: Action


def dest_for(cache_path: Path, f: ModelFile) -> Path:
    """Where the cache copy of ``f`` lives: ``cache_path/<type>/<name>``."""
    return cache_path.joinpath(f.type, *f.name.split("/"))


def same_mtime(source_ns: int, cache_ns: int) -> bool:
    """Whether a cache copy's mtime records the source's, at the cache's granularity."""
    for unit in (_SECOND_NS, _MICROSECOND_NS):
        if cache_ns % unit == 0:
            return source_ns // unit == cache_ns // unit
    return source_ns == cache_ns


def is_hit(f: ModelFile, cached: CacheEntry | None) -> bool:
    return cached is not None and cached.size == f.size and same_mtime(f.mtime_ns, cached.mtime_ns)


def plan(
    files: Sequence[ModelFile],
    cache_path: Path,
    existing: Mapping[Path, CacheEntry | None],
) -> list[Step]:
    """One step per destination, in priority order: ``hit`` if the copy is up to date.

    ``existing`` maps destinations to the stat of their cache copy (absent or None: no copy).
    A file whose destination was already planned (a duplicate) is left out.
    """
    steps: list[Step] = []
    planned: set[Path] = set()
    for f in files:
        dest = dest_for(cache_path, f)
        if dest in planned:
            continue
        planned.add(dest)
        action: Action = "hit" if is_hit(f, existing.get(dest)) else "copy"
        steps.append(Step(file=f, dest=dest, action=action))
    return steps


def fits(size: int, free_bytes: int, reserve_bytes: int, existing_dest_size: int = 0) -> bool:
    """Would copying ``size`` bytes leave at least ``reserve_bytes`` free on the cache?

    Conservative on purpose: a stale copy being replaced (``existing_dest_size``) is freed
    only when the new copy is renamed over it, so during the copy both exist and its size is
    *not* credited.  Filesystem block rounding is small and is absorbed by the reserve.
    """
    if min(size, existing_dest_size, reserve_bytes) < 0:
        raise ValueError(
            f"fits: sizes must not be negative (size={size}, reserve_bytes={reserve_bytes}, "
            f"existing_dest_size={existing_dest_size})"
        )
    return free_bytes - size >= reserve_bytes
