"""The usage journals on the volume: ``<usage dir>/<pod>.jsonl``, one writer per file.

Each pod appends only to its own journal (whole lines, one ``write`` per batch under a
shared ``flock``), so pods never write the same file and need no server.  A pod killed in
the middle of a write leaves a torn last line: readers skip it, and the next append starts
on a fresh line.  Past ``COMPACT_BYTES`` the owner rewrites its journal atomically as
per-model day totals plus its most recent records (``compact``), dropping what is older
than the window.  Journals of pods silent for longer than the window are removed by any
warmup (``prune``), safely against a pod that writes again at that moment.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from comfy_init.files.durable import write_atomic
from comfy_init.usage import records
from comfy_init.usage.records import Boot, DayTotal, Open, Record

SUFFIX = ".jsonl"
COMPACT_BYTES = 1024 * 1024  # a journal this large is compacted by its writer
KEEP_RECENT = 2000  # raw records kept by compaction (the newest)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_PRUNING = ".pruning"
# A journal being retired is hidden under a name holding the wall-clock time of its rename;
# another pruner removes such a name only once it is older than this (a retirement takes
# milliseconds), never while its pruner may still be looking at it.
_RETIRING_SECONDS = 3600.0


def pod_name(environ: Mapping[str, str]) -> str:
    """This pod's journal name: ``RUNPOD_POD_ID``, else ``HOSTNAME``, else the host name;
    made safe as a file name."""
    raw = environ.get("RUNPOD_POD_ID") or environ.get("HOSTNAME") or socket.gethostname()
    safe = _UNSAFE.sub("_", raw.strip()).lstrip(".")
    return safe or "pod"


def path_for(usage_dir: Path, pod: str) -> Path:
    return usage_dir / f"{pod}{SUFFIX}"


@dataclass
class Contents:
    """The records of one or more journals, and the lines skipped while reading them."""

    records: list[Record] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=lambda: {"torn": 0, "corrupt": 0, "future": 0})

    def add(self, other: Contents) -> None:
        self.records.extend(other.records)
        for reason, n in other.skipped.items():
            self.skipped[reason] += n


def parse(data: bytes) -> Contents:
    """Records of a journal's bytes; a last line without its newline is torn, skipped."""
    out = Contents()
    lines = data.split(b"\n")
    if lines[-1]:
        out.skipped["torn"] += 1
    for raw in lines[:-1]:
        if not raw.strip():
            continue
        try:
            verdict, record = records.decode(raw.decode("utf-8"))
        except UnicodeDecodeError:
            verdict, record = "corrupt", None
        if record is None:
            out.skipped[verdict] += 1
        else:
            out.records.append(record)
    return out


def journals(usage_dir: Path) -> list[Path]:
    """Every pod's journal in ``usage_dir`` (none if it does not exist)."""
    try:
        names = os.listdir(usage_dir)
    except OSError:  # missing, not a folder, unreadable: no journal to go by
        return []
    return sorted(usage_dir / n for n in names if n.endswith(SUFFIX) and not n.startswith("."))


def read(path: Path) -> Contents:
    return parse(path.read_bytes())


def read_all(usage_dir: Path) -> dict[str, Contents]:
    """Each pod's records; a journal that vanished or cannot be read is left out."""
    found: dict[str, Contents] = {}
    for path in journals(usage_dir):
        with contextlib.suppress(OSError):
            found[path.name.removesuffix(SUFFIX)] = read(path)
    return found


def append(path: Path, batch: Sequence[Record]) -> int:
    """Append ``batch`` as whole lines in one write; return the journal's size after it.

    Raises OSError (volume full, read-only, gone); the caller decides what that costs.
    """
    data = "".join(records.encode(r) for r in batch).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _lock(fd, fcntl.LOCK_SH)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a torn line from a killed writer stays alone on its line
        _write_all(fd, data)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def compact(
    recs: Iterable[Record], now: float, keep_days: int, keep_recent: int = KEEP_RECENT
) -> list[Record]:
    """Day totals of everything but the ``keep_recent`` newest raw records, then those.

    Whatever is older than ``keep_days`` days before ``now``'s day is dropped.
    """
    first_day = records.day_of(now) - keep_days
    totals: dict[tuple[int, str, str], DayTotal] = {}
    raw: list[Open | Boot] = []
    for r in recs:
        if isinstance(r, DayTotal):
            _merge(totals, r)
        else:
            raw.append(r)
    cut = max(0, len(raw) - keep_recent)
    for r in raw[:cut]:
        if isinstance(r, Open):
            day = records.day_of(r.time)
            _merge(totals, DayTotal(day, r.type, r.name, r.size, r.mtime_ns, 1, r.time))
    kept: list[Record] = [totals[k] for k in sorted(totals) if k[0] >= first_day]
    kept.extend(r for r in raw[cut:] if records.day_of(r.time) >= first_day)
    return kept


def _merge(totals: dict[tuple[int, str, str], DayTotal], t: DayTotal) -> None:
    key = (t.day, t.type, t.name)
    old = totals.get(key)
    if old is None:
        totals[key] = t
        return
    newer = t if t.last >= old.last else old
    totals[key] = DayTotal(t.day, t.type, t.name, newer.size, newer.mtime_ns,
                           old.opens + t.opens, newer.last)  # fmt: skip


def rewrite(path: Path, recs: Sequence[Record]) -> int:
    """Replace the journal with ``recs`` atomically; return its new size."""
    text = "".join(records.encode(r) for r in recs)
    write_atomic(path, text)
    return len(text.encode("utf-8"))


class Writer:
    """Appends batches to one journal and compacts it when it has grown: past
    ``compact_bytes``, then each time it has doubled since (a fleet that uses many models
    does not compact on every batch)."""

    def __init__(
        self,
        path: Path,
        keep_days: int,
        compact_bytes: int = COMPACT_BYTES,
        keep_recent: int = KEEP_RECENT,
    ) -> None:
        self.path = path
        self.keep_days = keep_days
        self.compact_bytes = compact_bytes
        self.keep_recent = keep_recent
        self._compact_at = compact_bytes
        self._size = 0

    def write(self, batch: Sequence[Record]) -> None:
        """Append ``batch`` (raises OSError: nothing or a torn line was written)."""
        self._size = append(self.path, batch)

    def compact_if_grown(self, now: float) -> int | None:
        """Compact if the journal has grown enough; the records kept, or None if it had not.

        Raises OSError (the journal is left as it was; tried again once it has doubled).
        """
        if self._size < self._compact_at:
            return None
        self._compact_at = 2 * self._size
        kept = compact(read(self.path).records, now, self.keep_days, self.keep_recent)
        self._size = rewrite(self.path, kept)
        self._compact_at = max(self.compact_bytes, 2 * self._size)
        return len(kept)


def prune(usage_dir: Path, max_age_seconds: float, now: float | None = None) -> list[Path]:
    """Remove the journals (and leftover temp files) not written for ``max_age_seconds``.

    Safe when several pods prune at once (only one rename of a file succeeds) and when the
    journal's pod appends at that moment: the journal is renamed to a hidden name first,
    then locked exclusively (waiting for an append in progress), then looked at again; a
    journal written meanwhile is put back (its lines added to a new journal started since).
    """
    now = time.time() if now is None else now
    cutoff = now - max_age_seconds
    removed: list[Path] = []
    try:
        names = sorted(os.listdir(usage_dir))
    except OSError:
        return removed
    for name in names:
        path = usage_dir / name
        try:
            if path.stat().st_mtime >= cutoff:
                continue
        except OSError:
            continue
        if name.startswith("."):  # a pruner's or a compaction's leftover: nobody writes it
            if _retiring(name, now):
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
        elif name.endswith(SUFFIX) and _retire(path, cutoff):
            removed.append(path)
    return removed


def _retiring(name: str, now: float) -> bool:
    """Whether hidden ``name`` is a journal another pruner renamed recently (still at work)."""
    if not name.endswith(_PRUNING):
        return False
    stamp = name[: -len(_PRUNING)].rpartition(".")[2]
    return stamp.isdigit() and now - int(stamp) / 1e9 < _RETIRING_SECONDS


def _retire(path: Path, cutoff: float) -> bool:
    hidden = path.with_name(f".{path.name}.{os.getpid()}.{time.time_ns()}{_PRUNING}")
    try:
        os.rename(path, hidden)
    except OSError:  # another pod pruned it first, or it is gone
        return False
    try:
        fd = os.open(hidden, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # renamed but unreadable to us: give it back untouched
        with contextlib.suppress(OSError):
            os.link(hidden, path)
            os.unlink(hidden)
        return False
    try:
        _lock(fd, fcntl.LOCK_EX)
        if os.fstat(fd).st_mtime < cutoff:
            os.unlink(hidden)
            return True
        _restore(fd, hidden, path)  # its pod wrote to it between our look and the rename
        return False
    finally:
        os.close(fd)


def _restore(fd: int, hidden: Path, path: Path) -> None:
    try:
        os.link(hidden, path)
    except FileExistsError:  # the pod has started a new journal: hand it these lines too
        data = os.pread(fd, os.fstat(fd).st_size, 0)
        if data and not data.endswith(b"\n"):
            data += b"\n"
        out = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        try:
            _lock(out, fcntl.LOCK_SH)
            _write_all(out, data)
        finally:
            os.close(out)
    os.unlink(hidden)


def _lock(fd: int, how: int) -> None:
    """Take a ``flock``; a filesystem without locks (some network mounts) goes without."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, how)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
