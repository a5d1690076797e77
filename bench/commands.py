"""Timed commands (a copy command, ``comfy-init warmup`` with its environment and report),
and the check that a copy holds the same bytes as its source.

Each copy is timed from start to exit (what a user waits for); the time until ``sync``
returns afterwards is recorded beside it, since ``comfy-init`` fsyncs every copy while
``cp`` and ``rsync`` leave dirty pages behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import REPO

COMFY_INIT = REPO / ".venv" / "bin" / "comfy-init"
CHUNK = 8 * 1024 * 1024


class BenchError(RuntimeError):
    """A benchmark run failed (a command, a copy that differs, a setup step)."""


@dataclass(frozen=True)
class Timing:
    seconds: float  # the command, start to exit
    flushed_seconds: float  # the command plus a sync of what it left dirty
    cpu_seconds: float  # user + system time of the command (and its children)


def timed(argv: list[str], log: Path, env: Mapping[str, str] | None = None) -> Timing:
    """Run ``argv`` with its output in ``log``; raise BenchError if it fails."""
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    os.sync()
    flushed = time.perf_counter() - start
    if proc.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        raise BenchError(f"{argv[0]} exited {proc.returncode}; last output:\n{tail}")
    return Timing(seconds, flushed, usage.ru_utime + usage.ru_stime)


def warmup_env(
    comfyui: Path, cache: Path, run_dir: Path, config: Path, extra: Mapping[str, str]
) -> dict[str, str]:
    return {
        **os.environ,
        "COMFYUI_PATH": str(comfyui),
        "CACHE_PATH": str(cache),
        "RUN_DIR": str(run_dir),
        "WARMUP_CONFIG": str(config),
        "CACHE_RESERVE_MB": "0",
        "LOG_FORMAT": "json",
        **extra,
    }


def warmup_totals(run_dir: Path) -> dict[str, Any]:
    """The totals of the warmup report the last run wrote."""
    report = json.loads((run_dir / "warmup-report.json").read_text(encoding="utf-8"))
    if report.get("state") != "done":
        raise BenchError(f"warmup report says state={report.get('state')!r}, expected 'done'")
    totals: dict[str, Any] = report["totals"]
    return totals


def same_content(a: Path, b: Path) -> bool:
    """Whether two files hold the same bytes (sizes first, then block by block)."""
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb", buffering=0) as fa, open(b, "rb", buffering=0) as fb:
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


def differing(pairs: Iterable[tuple[Path, Path]]) -> list[str]:
    """The copies (second of each pair) that are missing or differ from their source."""
    return [str(dst) for src, dst in pairs if not dst.is_file() or not same_content(src, dst)]
