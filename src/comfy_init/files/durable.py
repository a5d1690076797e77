"""Files made durable: whole under their name or not there at all, even after a power loss.

- ``write_atomic`` / ``write_pieces``: a temp file in the same directory, fsync, rename; a
  reader sees the old file or the new one, never a part.
- ``sync_dir``: make the renames into a directory durable (the rename itself is only in the
  directory, which is written back on its own).
- ``partial_path`` / ``is_partial``: the name of a copy in progress,
  ``.<name>.<random>.comfy-init-partial`` beside its destination: hidden and not a model
  extension, so ComfyUI never lists or resolves it, and a wildcard never matches it.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

PARTIAL_SUFFIX = ".comfy-init-partial"
IOV_MAX = 1024  # pieces per writev(2) call (the Linux limit)


def partial_path(dest: Path) -> Path:
    """A fresh hidden temp name beside ``dest``."""
    return dest.with_name(f".{dest.name}.{secrets.token_hex(4)}{PARTIAL_SUFFIX}")


def is_partial(name: str) -> bool:
    """Is ``name`` (a file name, no folder) a copy in progress?"""
    return name.startswith(".") and name.endswith(PARTIAL_SUFFIX)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_pieces(path: Path, pieces: list[bytes], mode: int = 0o644) -> None:
    """``write_atomic`` for a document in pieces, which are never joined: a temp file in the
    same directory, ``writev``, fsync, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        try:
            for start in range(0, len(pieces), IOV_MAX):
                batch = pieces[start : start + IOV_MAX]
                done, want = os.writev(fd, batch), sum(map(len, batch))
                if done < want:  # a short write: the rest, plainly
                    rest = memoryview(b"".join(batch))[done:]
                    while rest:
                        rest = rest[os.write(fd, rest) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def sync_dir(path: Path) -> None:
    """Make the renames into directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
