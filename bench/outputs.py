"""Where a benchmark run goes and what it records beside its figures: one run per data
directory at a time, the machine it ran on, the Markdown table and its JSON twin.

Results go to ``bench/results/`` by default (not tracked).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import REPO
from bench.commands import BenchError

RESULTS_DIR = REPO / "bench" / "results"


class DataDirBusy(BenchError):
    """Another run holds the data directory."""


@contextlib.contextmanager
def data_dir_lock(data_dir: Path) -> Iterator[None]:
    """Hold ``data_dir`` for this run: another run there would rewrite the files this one
    is timing.  DataDirBusy at once if another run holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".lock", "w", encoding="ascii") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirBusy(
                f"another benchmark is running in {data_dir} "
                "(wait for it, or give this one its own --data-dir)"
            ) from None
        yield


def machine() -> dict[str, object]:
    """CPUs, memory, kernel, Python, date and load at the start of the run."""
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_average_at_start": os.getloadavg()[0],
    }


def stamp() -> str:
    """The run's time, for result file names."""
    return time.strftime("%Y%m%d-%H%M%S")


def write(stem: Path, markdown: str, doc: dict[str, Any]) -> None:
    """``stem.md`` and its JSON twin ``stem.json``."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(markdown, encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
