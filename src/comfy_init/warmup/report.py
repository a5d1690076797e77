"""The warmup report: a JSON file under ``$RUN_DIR`` describing the last (or running) warmup.

It is the contract between the warmup (writer) and the metrics sidecar (reader): the sidecar
never imports the copier, it reads this file.  Written atomically (temp + fsync + rename)
before every open of a source file and within 0.1 s of every other state change
(``live_report.py``), so a reader always sees a whole document.

Schema (``version`` 1)::

    {
      "version": 1,
      "state": "running" | "done" | "interrupted" | "failed",
      "pid": 123,                       # process that ran the warmup
      "started_at": 1700000000.0,       # unix time
      "finished_at": 1700000042.0 | null,
      "config": "/workspace/ComfyUI/warmup_models.conf",
      "models_path": "/workspace/ComfyUI/models",
      "cache_path": "/root/fast_cache",
      "files": [FileRecord, ...],       # in config priority order
      "totals": {...},                  # see Totals
      "skipped": [SkippedLine, ...],    # config lines (or files of one) left out, config order
      "user_yaml_problems": ["file:line: ...", ...],  # in $COMFYUI_PATH/extra_model_paths.yaml
      "auto": {...} | null              # what @auto stood for; null without an @auto line
    }

FileRecord: ``type`` (first path component, e.g. "checkpoints"), ``name`` (path below the
type dir), ``source``/``dest`` (absolute), ``size`` (bytes, source size), ``status`` (see
``FILE_STATUSES``), ``bytes_copied``, ``seconds`` (wall time of the copy; 0 for hits),
``error`` (message or null), ``line`` ("file:line" of the config entry), ``source_opens``
(how many times the copier has opened the *source* file so far; written before each open,
so a watcher that sees an open of a volume file can tell the copier's opens from
ComfyUI's), ``auto`` (true for a file the ``@auto`` line chose).  A config line that
matches nothing appears once with status "missing", its ``name`` the pattern as written and
``size`` 0.

SkippedLine: ``line`` ("file:line"), ``entry`` (the line as written), ``reason`` (``invalid``:
the line itself is bad; ``link_outside``: a symlink leads outside the volume and the model
folders; ``link_loop``), ``error`` (the whole message).  A skipped line's other files, and
every other line, are warmed.  ``user_yaml_problems``: the parts of the user's own
``extra_model_paths.yaml`` that were left out (ComfyUI itself would fail on them).

``auto``: ``line`` ("file:line"), ``models`` (models the journals hold in the window),
``candidates`` (of those, on the volume and not listed by other lines), ``files`` and
``bytes`` (chosen), ``left_out`` (candidates over the budget), ``dropped`` (per reason) and
``skipped_lines`` (journal lines skipped: torn, corrupt, future).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from comfy_init.files.durable import write_atomic

REPORT_VERSION = 1

FileStatus = Literal[
    "pending",  # planned, not started
    "copying",  # in progress
    "hit",  # cache copy already up to date: no bytes read
    "copied",  # copied in this run
    "skipped_space",  # did not fit in free space minus the reserve
    "missing",  # config line matched nothing on the volume
    "failed",  # I/O error or similar; ``error`` says why
    "interrupted",  # a signal stopped the warmup before this file completed
]
FILE_STATUSES: tuple[str, ...] = (
    "pending",
    "copying",
    "hit",
    "copied",
    "skipped_space",
    "missing",
    "failed",
    "interrupted",
)
RunState = Literal["running", "done", "interrupted", "failed"]
RUN_STATES: tuple[str, ...] = ("running", "done", "interrupted", "failed")


@dataclass
class FileRecord:
    type: str
    name: str
    source: str
    dest: str
    size: int
    status: FileStatus = "pending"
    bytes_copied: int = 0
    seconds: float = 0.0
    error: str | None = None
    line: str = ""
    source_opens: int = 0
    auto: bool = False


@dataclass
class SkippedLine:
    line: str
    entry: str
    reason: str  # one of manifest.lines.SKIP_REASONS
    error: str


@dataclass
class Totals:
    files: int = 0
    hit: int = 0
    copied: int = 0
    skipped_space: int = 0
    missing: int = 0
    failed: int = 0
    interrupted: int = 0
    bytes_total: int = 0  # size of every file planned (hits included)
    bytes_copied: int = 0  # bytes written in this run
    seconds: float = 0.0  # wall time of the whole warmup

    @classmethod
    def of(cls, files: list[FileRecord], seconds: float) -> Totals:
        t = cls(files=len(files), seconds=seconds)
        for f in files:
            if f.status in ("hit", "copied", "skipped_space", "missing", "failed", "interrupted"):
                setattr(t, f.status, getattr(t, f.status) + 1)
            t.bytes_total += f.size
            t.bytes_copied += f.bytes_copied
        return t


@dataclass
class Report:
    state: RunState
    pid: int
    started_at: float
    config: str
    models_path: str
    cache_path: str
    finished_at: float | None = None
    files: list[FileRecord] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    skipped: list[SkippedLine] = field(default_factory=list)
    user_yaml_problems: list[str] = field(default_factory=list)
    auto: dict[str, Any] | None = None
    version: int = REPORT_VERSION

    def config_problems(self) -> list[str]:
        """What this warmup left out because of its inputs, each as ``file:line: ...``."""
        return [s.error for s in self.skipped] + list(self.user_yaml_problems)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=False) + "\n"

    def to_compact_json(self) -> str:
        """The same document as ``to_json``, on one line and without deep copies: ~10x
        cheaper, for the warmup's frequent rewrites (every field below is a scalar)."""
        data = dict(vars(self))
        data["files"] = [dict(vars(f)) for f in self.files]
        data["totals"] = dict(vars(self.totals))
        data["skipped"] = [dict(vars(s)) for s in self.skipped]
        return json.dumps(data) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        if data.get("version") != REPORT_VERSION:
            raise ValueError(f"unsupported warmup report version {data.get('version')!r}")
        files = [FileRecord(**f) for f in data.get("files", [])]
        totals = Totals(**data.get("totals", {}))
        skipped = [SkippedLine(**s) for s in data.get("skipped", [])]
        rest = {k: v for k, v in data.items() if k not in ("files", "totals", "skipped")}
        return cls(files=files, totals=totals, skipped=skipped, **rest)


def write_report(path: Path, report: Report) -> None:
    write_atomic(path, report.to_json())


def read_report(path: Path) -> Report | None:
    """The report at ``path``; None if there is none.  Raises ValueError if it is corrupt."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"warmup report {path} is not JSON: {exc}") from exc
    return Report.from_dict(data)
