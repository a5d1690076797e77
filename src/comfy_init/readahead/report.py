"""The readahead report (``Settings.readahead_report_path``), read by the metrics sidecar.

Written atomically when the readahead finishes and again once ComfyUI has answered (with how
many of ComfyUI's opens found their file already read ahead).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comfy_init.files.durable import write_atomic


@dataclass(frozen=True)
class Report:
    state: str  # reading, done, off
    listed_files: int = 0  # files in the startup list at the start
    files: int = 0  # files read ahead, complete
    bytes: int = 0
    dirs: int = 0
    missing: int = 0  # listed files that were gone
    changed: int = 0  # listed files whose size or mtime had changed
    seconds: float = 0.0
    opens_prefetched: int = 0  # ComfyUI's opens of a file the readahead had already read
    opens_early: int = 0  # opens of a listed file before the readahead had read it
    opens_unlisted: int = 0  # opens of a file the list did not have
    recorded_files: int = 0  # files in the list written after this start (-1: not yet)
    list_error: str = ""


def render(report: Report) -> str:
    return json.dumps(dataclasses.asdict(report), indent=1) + "\n"


def parse(text: str) -> Report:
    """The report in ``text``; ValueError if it is not one (a field of the wrong type)."""
    doc: Any = json.loads(text)
    if not isinstance(doc, dict):
        raise ValueError("the readahead report is not a JSON object")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(Report):
        value = doc.get(f.name, f.default)
        want = type(f.default) if f.default is not dataclasses.MISSING else str
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, want) or isinstance(value, bool):
            raise ValueError(f"readahead report: {f.name} is not a {want.__name__}: {value!r}")
        values[f.name] = value
    return Report(**values)


def read(path: Path) -> Report:
    return parse(path.read_text(encoding="utf-8"))


def read_if_present(path: Path) -> Report | None:
    """The report at ``path``; None when there is none (before the first start)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse(text)


def write(path: Path, report: Report) -> None:
    write_atomic(path, render(report))
