"""The usage journal's line format: one JSON object per line, each with its format version.

Three kinds of line, told apart by ``k``:

- ``open``: ComfyUI opened a model file: time, type folder, name below it, size, mtime and
  where it was opened from (``cache`` or ``volume``).  Nothing else: no other path, no prompt.
- ``boot``: the recorder started (a pod boot); lets the ranking tell what a boot asked first.
- ``day``: compaction's total of one model's opens on one UTC day (count and last time).

A line that is not whole JSON, lacks a field or has a wrong type is *corrupt*; a line whose
``v`` is above ``FORMAT`` is *future* (written by a newer comfy-init); both are skipped and
counted by the reader, never an error.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Literal

FORMAT = 1
LOCATIONS: tuple[str, ...] = ("cache", "volume")
DAY_SECONDS = 86400

Verdict = Literal["ok", "corrupt", "future"]


@dataclass(frozen=True)
class Open:
    """One open of a model file by ComfyUI."""

    time: float
    type: str
    name: str
    size: int
    mtime_ns: int
    location: str

    @property
    def key(self) -> tuple[str, str]:
        return self.type, self.name


@dataclass(frozen=True)
class Boot:
    """The recorder of this journal's pod started."""

    time: float


@dataclass(frozen=True)
class DayTotal:
    """Opens of one model on one UTC day, as compaction keeps them."""

    day: int  # days since the epoch (UTC)
    type: str
    name: str
    size: int
    mtime_ns: int
    opens: int
    last: float  # time of the day's last open

    @property
    def key(self) -> tuple[str, str]:
        return self.type, self.name


Record = Open | Boot | DayTotal


def day_of(time: float) -> int:
    return math.floor(time / DAY_SECONDS)


def encode(record: Record) -> str:
    """The record as one journal line, newline included."""
    data: dict[str, Any]
    if isinstance(record, Open):
        data = {"k": "open", "t": round(record.time, 3), "type": record.type,
                "name": record.name, "size": record.size, "mtime_ns": record.mtime_ns,
                "from": record.location}  # fmt: skip
    elif isinstance(record, Boot):
        data = {"k": "boot", "t": round(record.time, 3)}
    else:
        data = {"k": "day", "day": record.day, "type": record.type, "name": record.name,
                "size": record.size, "mtime_ns": record.mtime_ns, "opens": record.opens,
                "last": round(record.last, 3)}  # fmt: skip
    return json.dumps({"v": FORMAT, **data}, ensure_ascii=False, separators=(",", ":")) + "\n"


def decode(line: str) -> tuple[Verdict, Record | None]:
    """``("ok", record)``, or ``("corrupt" | "future", None)`` for a line to skip."""
    try:
        data = json.loads(line)
    except ValueError:
        return "corrupt", None
    if not isinstance(data, dict):
        return "corrupt", None
    version = data.get("v")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return "corrupt", None
    if version > FORMAT:
        return "future", None
    try:
        record = _record(data)
    except (KeyError, TypeError, ValueError):
        return "corrupt", None
    return "ok", record


def _record(data: dict[str, Any]) -> Record:
    kind = data["k"]
    if kind == "boot":
        return Boot(_time(data["t"]))
    type_, name = _text(data["type"]), _text(data["name"])
    size, mtime_ns = _count(data["size"]), _count(data["mtime_ns"])
    if kind == "open":
        location = data["from"]
        if location not in LOCATIONS:
            raise ValueError(location)
        return Open(_time(data["t"]), type_, name, size, mtime_ns, location)
    if kind == "day":
        opens = _count(data["opens"])
        if opens < 1:
            raise ValueError(opens)
        return DayTotal(_count(data["day"]), type_, name, size, mtime_ns, opens,
                        _time(data["last"]))  # fmt: skip
    raise ValueError(kind)


def _count(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(value)
    return value


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(value)
    if value < 0:
        raise ValueError(value)
    return float(value)


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(value)
    return value
