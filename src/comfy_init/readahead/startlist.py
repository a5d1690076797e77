"""The startup list: the files ComfyUI read while it started, kept on the volume.

``$COMFYUI_PATH/.comfy-init/startup-files.json``, beside ComfyUI, so it survives the pod and
every pod of the volume reads the same one.  Paths are relative to the volume root (the
parent of ``$COMFYUI_PATH``: ComfyUI and a venv beside it), so the volume can be mounted
elsewhere.  Entries are in first-read order; folders carry no size.  Written atomically
(temp file, fsync, rename); a list that cannot be read is ignored with a reason, never an
error: it is only a hint.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from comfy_init.files.durable import write_atomic
from comfy_init.readahead.trace import Kind, Seen

FORMAT = "comfy-init-startup-files"
VERSION = 1
FOLDER = ".comfy-init"
NAME = "startup-files.json"


class ListUnreadable(Exception):
    """The list exists but is not one we can use; the message says why."""


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the volume root
    kind: Kind
    size: int = 0
    mtime_ns: int = 0


def location(comfyui_path: Path) -> Path:
    return comfyui_path / FOLDER / NAME


def volume_root(comfyui_path: Path) -> Path:
    return comfyui_path.absolute().parent


def render(entries: Iterable[Entry], recorded_at: float) -> str:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "recorded_at": round(recorded_at, 3),
        "entries": [
            [e.path, "d"] if e.kind == "dir" else [e.path, "f", e.size, e.mtime_ns] for e in entries
        ],
    }
    return json.dumps(doc, separators=(",", ":")) + "\n"


def parse(text: str, source: Path) -> list[Entry]:
    """The entries of a rendered list; ``ListUnreadable`` naming ``source`` and why."""
    try:
        doc: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ListUnreadable(f"{source}:{exc.lineno}: not JSON ({exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ListUnreadable(f"{source}: not a startup list (no format {FORMAT!r})")
    if doc.get("version") != VERSION:
        raise ListUnreadable(f"{source}: version {doc.get('version')!r}, this reads {VERSION}")
    entries = []
    for n, item in enumerate(doc.get("entries", [])):
        entry = _entry(item)
        if entry is None:
            raise ListUnreadable(f"{source}: entry {n} is malformed: {item!r}")
        entries.append(entry)
    return entries


def _entry(item: Any) -> Entry | None:
    if not isinstance(item, list) or len(item) < 2 or not isinstance(item[0], str):
        return None
    rel = PurePosixPath(item[0])
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        return None  # never read outside the volume root
    if item[1] == "d" and len(item) == 2:
        return Entry(str(rel), "dir")
    if item[1] == "f" and len(item) == 4 and all(isinstance(v, int) for v in item[2:]):
        return Entry(str(rel), "file", item[2], item[3])
    return None


def load(path: Path) -> list[Entry]:
    """The list at ``path``; [] when there is none; ``ListUnreadable`` when it is bad."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise ListUnreadable(f"{path}: cannot be read: {exc}") from None
    return parse(text, path)


def refresh(seen: Iterable[Seen], stats: Mapping[str, os.stat_result | None]) -> list[Entry]:
    """Entries for what this start read, with each file's size and mtime now (``stats``:
    list path -> its stat, None when it is gone).

    A path that is gone or is no longer a regular file (or folder) is left out: the list
    follows the volume (files added, changed, removed) at every start.
    """
    entries = []
    for s in seen:
        st = stats.get(s.path)
        if st is None:
            continue
        if s.kind == "dir" and stat.S_ISDIR(st.st_mode):
            entries.append(Entry(s.path, "dir"))
        elif s.kind == "file" and stat.S_ISREG(st.st_mode):
            entries.append(Entry(s.path, "file", st.st_size, st.st_mtime_ns))
    return entries


def save(path: Path, entries: list[Entry], recorded_at: float) -> None:
    write_atomic(path, render(entries, recorded_at))
