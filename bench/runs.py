"""The timed runs: a copy command, ``comfy-init warmup``, K parallel readers; and the check
that a copy holds the same bytes as its source.

Each copy is timed from start to exit (what a user waits for); the time until ``sync``
returns afterwards is recorded beside it, since ``comfy-init`` fsyncs every copy while
``cp`` and ``rsync`` leave dirty pages behind.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHUNK = 8 * 1024 * 1024


class BenchError(RuntimeError):
    pass


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


@dataclass(frozen=True)
class Slice:
    path: Path
    offset: int
    length: int


def reader_slices(files: list[tuple[Path, int]], budget: int, readers: int) -> list[Slice]:
    """``readers`` disjoint byte ranges of ``files`` (path, size), about ``budget`` bytes in
    all: reader i reads file i mod n, so every reader has its own file handle and range."""
    n = len(files)
    per_file = math.ceil(readers / n)
    smallest = min(size for _, size in files)
    length = min(budget // readers, smallest // per_file)
    if length <= 0:
        raise BenchError(f"parallel read: files too small for {readers} readers")
    return [Slice(files[i % n][0], (i // n) * length, length) for i in range(readers)]


def parallel_read(slices: list[Slice], log: Path, copy_to: Path | None = None) -> tuple[float, int]:
    """Read every slice at once, each with its own ``dd`` process; (seconds, bytes).

    With ``copy_to``, each reader writes its slice to a file of its own there and fsyncs
    it: a parallel copy with nothing but the kernel's page copies in it."""
    with open(log, "ab") as out:
        start = time.perf_counter()
        procs = [
            subprocess.Popen(
                [
                    "dd",
                    f"if={s.path}",
                    f"of={copy_to / f'slice-{i}'}" if copy_to else "of=/dev/null",
                    "bs=1M",
                    "iflag=skip_bytes,count_bytes",
                    f"skip={s.offset}",
                    f"count={s.length}",
                    *(["conv=fsync"] if copy_to else []),
                ],
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
            for i, s in enumerate(slices)
        ]
        codes = [p.wait() for p in procs]
        seconds = time.perf_counter() - start
    if any(codes):
        raise BenchError(f"parallel read: dd exited {codes} (see {log})")
    return seconds, sum(s.length for s in slices)


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
