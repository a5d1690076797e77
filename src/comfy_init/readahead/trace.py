"""What ComfyUI read while it started, in the order it first read it (pure).

Input: the hook's trace lines (``hook/sitecustomize.py``, one file per process) and the
files mapped by those processes (``/proc/<pid>/maps``) when ComfyUI first answered.  A mapped
file that no trace line names was loaded by the dynamic linker (a ``DT_NEEDED`` library such
as ``libtorch_cpu.so``); it gets the time of the first thing read in its nearest folder (or
a parent) that the trace does name, so a package's libraries are fetched when the package
starts to load, not last.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

Kind = Literal["file", "dir"]
_KINDS: dict[str, Kind] = {"f": "file", "x": "file", "l": "file", "d": "dir"}


@dataclass(frozen=True)
class Seen:
    """One path read under the root: ``path`` is relative to it; ``at`` monotonic seconds."""

    path: str
    kind: Kind
    at: float


def parse_lines(lines: Iterable[str]) -> list[tuple[float, Kind, str]]:
    """Trace lines as (time, kind, absolute path); a torn or unknown line is skipped."""
    events = []
    for line in lines:
        parts = line.rstrip("\n").split("\t", 2)
        if len(parts) != 3 or parts[1] not in _KINDS or not parts[2].startswith("/"):
            continue
        try:
            at = float(parts[0])
        except ValueError:
            continue
        if math.isfinite(at):
            events.append((at, _KINDS[parts[1]], parts[2]))
    return events


def mapped_files(maps_text: str) -> list[str]:
    """Absolute paths of the files mapped in one ``/proc/<pid>/maps``, first mapping first."""
    found: dict[str, None] = {}
    for line in maps_text.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[5].startswith("/") and not fields[5].endswith(")"):
            found.setdefault(fields[5], None)  # " (deleted)" files are gone
    return list(found)


def _relative(path: str, root: PurePosixPath) -> str | None:
    p = PurePosixPath(path)
    if ".." in p.parts or not p.is_relative_to(root) or p == root:
        return None
    return str(p.relative_to(root))


def observe(
    events: Iterable[tuple[float, Kind, str]],
    mapped: Iterable[str],
    root: str,
    until: float,
) -> list[Seen]:
    """Every path under ``root`` read before ``until``, first-read order, each once."""
    base = PurePosixPath(root)
    first: dict[tuple[Kind, str], float] = {}
    for at, kind, path in events:
        rel = _relative(path, base)
        if rel is None or at > until:
            continue
        key = (kind, rel)
        if key not in first or at < first[key]:
            first[key] = at
    earliest_in: dict[str, float] = {}  # folder -> first time something in it was read
    for (kind, rel), at in first.items():
        folder = rel if kind == "dir" else str(PurePosixPath(rel).parent)
        if at < earliest_in.get(folder, math.inf):
            earliest_in[folder] = at
    start = min(first.values(), default=until)
    for path in mapped:
        rel = _relative(path, base)
        if rel is None or ("file", rel) in first:
            continue
        first[("file", rel)] = _nearest_folder_time(rel, earliest_in, start)
    ordered = sorted(first.items(), key=lambda item: (item[1], item[0][0] == "file", item[0][1]))
    return [Seen(path=rel, kind=kind, at=at) for (kind, rel), at in ordered]


def _nearest_folder_time(rel: str, earliest_in: dict[str, float], start: float) -> float:
    for folder in PurePosixPath(rel).parents:
        at = earliest_in.get(str(folder))
        if at is not None:
            return at
    return start
