"""Is any process writing a file right now?  Read from ``/proc/<pid>/fd`` and ``fdinfo``.

A download may pause for longer than any settle time; a file some process holds open for
writing is not complete, whatever its size did lately.  ``/proc`` is injected so tests can
point it at a temp tree; processes we may not inspect are skipped.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

_ACCMODE = os.O_ACCMODE
_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)


def _fds(proc_root: Path) -> Iterator[tuple[Path, str]]:
    """``(fd link, fd name)`` for every descriptor of every process we can read."""
    try:
        pids = [p for p in os.listdir(proc_root) if p.isdigit()]
    except OSError:
        return
    for pid in pids:
        fd_dir = proc_root / pid / "fd"
        try:
            names = os.listdir(fd_dir)
        except OSError:
            continue
        for name in names:
            yield fd_dir / name, name


def fd_flags(fdinfo: Path) -> int | None:
    """The open flags in an ``fdinfo`` file (``flags:\\t0100002``, octal), or None."""
    try:
        text = fdinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            try:
                return int(value.strip(), 8)
            except ValueError:
                return None
    return None


def writers(path: Path, proc_root: Path = Path("/proc")) -> list[int]:
    """Pids of processes that have ``path`` open for writing."""
    target = os.path.realpath(path)
    found: list[int] = []
    for link, name in _fds(proc_root):
        try:
            where = os.readlink(link)
        except OSError:
            continue
        if where != target:
            continue
        flags = fd_flags(link.parent.parent / "fdinfo" / name)
        if flags is not None and flags & _ACCMODE in _WRITE_MODES:
            pid = int(link.parent.parent.name)
            if pid not in found:
                found.append(pid)
    return found


def has_writer(path: Path, proc_root: Path = Path("/proc")) -> bool:
    return bool(writers(path, proc_root))
