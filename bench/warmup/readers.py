"""K concurrent ``dd`` readers of the slow volume: the best rate a parallel reader gets, the
figure the warmup is compared with; optionally each writes its range to a local file and
fsyncs it (a parallel copy with nothing but the kernel's page copies in it)."""

from __future__ import annotations

import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bench.commands import BenchError


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
