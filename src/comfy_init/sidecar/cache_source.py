"""Cache metrics: the cache filesystem's size and free space (read on each scrape), and the
model files in the cache with their page-cache residency (a background scan: walking the
tree and asking the kernel about multi-GB files is too slow for a scrape).

The residency check opens each cached file; it announces each open first
(``expect_own_open``) so the open counter does not take it for ComfyUI loading a model.
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.core import Metric

from comfy_init import residency
from comfy_init.sidecar import families, model_files


@dataclass(frozen=True)
class TypeUsage:
    files: int = 0
    bytes: int = 0
    resident_bytes: int = 0


@dataclass(frozen=True)
class CacheScan:
    at: float  # unix time the scan finished
    by_type: dict[str, TypeUsage] = field(default_factory=dict)


def scan_cache(
    root: Path,
    expect_own_open: Callable[[Path], None] = lambda _p: None,
    stop: threading.Event | None = None,
    resident: Callable[[Path], tuple[int, int] | None] = residency.resident,
) -> CacheScan:
    """Count model files, bytes and resident bytes per type below ``root``.
    Raises FileNotFoundError if ``root`` does not exist."""
    files: dict[str, int] = defaultdict(int)
    sizes: dict[str, int] = defaultdict(int)
    cached: dict[str, int] = defaultdict(int)
    for folder in _type_dirs(root):
        files[folder] += 0
    for type_, _name, path in model_files.walk_model_files(root):
        if stop is not None and stop.is_set():
            break
        expect_own_open(path)
        answer = resident(path)
        if answer is None:  # vanished or unreadable meanwhile
            continue
        in_ram, size = answer
        files[type_] += 1
        sizes[type_] += size
        cached[type_] += in_ram
    return CacheScan(
        time.time(),
        {t: TypeUsage(files[t], sizes[t], cached[t]) for t in sorted(files)},
    )


def _type_dirs(root: Path) -> list[str]:
    try:
        return [e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return []


def filesystem_families(root: Path) -> list[Metric]:
    """Size and free space of the filesystem holding ``root`` (raises OSError)."""
    st = os.statvfs(root)
    return [
        families.single("cache_filesystem_size_bytes", float(st.f_blocks * st.f_frsize)),
        families.single("cache_filesystem_free_bytes", float(st.f_bavail * st.f_frsize)),
    ]


def scan_families(scan: CacheScan) -> list[Metric]:
    rows = scan.by_type.items()
    return [
        families.labelled("cache_files", (((t,), u.files) for t, u in rows)),
        families.labelled("cache_model_bytes", (((t,), u.bytes) for t, u in rows)),
        families.labelled("cache_resident_bytes", (((t,), u.resident_bytes) for t, u in rows)),
    ]


class CacheSource:
    """Source ``cache``: statvfs now, plus the latest background scan (``rescan``)."""

    name = "cache"

    def __init__(
        self, root: Path, expect_own_open: Callable[[Path], None] = lambda _p: None
    ) -> None:
        self.root = root
        self.expect_own_open = expect_own_open
        self.latest: CacheScan | None = None
        self.scan_error = ""

    def rescan(self, stop: threading.Event | None = None) -> None:
        """Walk the cache now (background loop); remember the result or the error."""
        try:
            self.latest = scan_cache(self.root, self.expect_own_open, stop)
            self.scan_error = ""
        except OSError as exc:
            self.latest = None
            self.scan_error = str(exc)

    def collect(self, now: float) -> tuple[list[Metric], bool]:
        out = filesystem_families(self.root)
        scan = self.latest
        if scan is not None:
            out += scan_families(scan)
        return out, not self.scan_error
