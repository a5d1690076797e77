"""Page-cache control between timed runs, so every run reads its source cold.

- ``drop_all``: flush dirty pages, then ``echo 3 > /proc/sys/vm/drop_caches`` (needs root);
  where that is refused, ``POSIX_FADV_DONTNEED`` on every file given.
- ``drop_files``: ``POSIX_FADV_DONTNEED`` on each file.  Through the slow-volume mount this
  empties the mount's own page cache and leaves the backing files warm, so a volume run is
  shaped by the stand-in alone, not by the local disk under it.
- ``warm_files``: read each file once (the backing store of the stand-in).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

DROP_CACHES = Path("/proc/sys/vm/drop_caches")
CHUNK = 8 * 1024 * 1024


def drop_files(paths: Iterable[Path]) -> None:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def drop_all(fallback: Iterable[Path]) -> str:
    """Empty the page cache; return how ("drop_caches" or "fadvise")."""
    os.sync()
    try:
        DROP_CACHES.write_text("3\n", encoding="ascii")
    except OSError:
        drop_files(fallback)
        return "fadvise"
    return "drop_caches"


def warm_files(paths: Iterable[Path]) -> int:
    """Read every file once so that it sits in the page cache; return the bytes read."""
    total = 0
    buf = bytearray(CHUNK)
    for path in paths:
        with open(path, "rb", buffering=0) as fh:
            while n := fh.readinto(buf):
                total += n
    return total
