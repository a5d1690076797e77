"""Many small files on local disk: ``comfy-init warmup`` against ``cp -r && sync``, one run.

Run it from the repository root, as root (it mounts a tmpfs for ``RUN_DIR``)::

    .venv/bin/python -m bench.small_files                     # 100 and 1000 x 1 MB, 3 x 1.8 GB
    .venv/bin/python -m bench.small_files --cases small-100 --repeat 5

Each case is a models tree made once under ``--data-dir`` (``small-N``: N files of
``--small-mb`` MB in five type folders and three LoRA subfolders; ``big-3``: three
checkpoints of ``--big-mb`` MB).  Each round times, for every case and in this order,
``cp -r`` followed by ``sync`` and ``comfy-init warmup`` with ``RUN_DIR`` on a tmpfs (as in
production, where it is ``/run``) and on the local disk; before each copy the dirty pages
are flushed and the sources are dropped from the page cache (``POSIX_FADV_DONTNEED`` on
each source, not ``drop_caches``: other benchmarks on the machine keep their cache).  The
warmup's time includes a ``sync`` too (it has nothing left to flush) and the interpreter's
start.  Copies are compared byte for byte with their sources in the first round.

Ratios are speed relative to ``cp -r && sync`` of the same round (> 1: faster than cp);
the table gives the median ratio over rounds and each row's fastest round, and is written
with a JSON twin to ``--results-dir``.  ``PYTHONPATH=<tree>/src`` times another source tree.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from bench import outputs
from bench.commands import COMFY_INIT, BenchError
from bench.slowfs import MB
from bench.small_files.cases import (
    CP,
    DISK,
    TMPFS,
    Cell,
    big_case,
    fresh,
    run_cp,
    run_warmup,
    small_case,
    table,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.small_files",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cases", default="small-100,small-1000,big-3", help="comma-separated")
    p.add_argument("--small-mb", type=float, default=1.0, help="size of each small file, MB")
    p.add_argument("--big-mb", type=int, default=1800, help="size of each big file, MB")
    p.add_argument("--repeat", type=int, default=3, help="rounds")
    p.add_argument("--run-dirs", default="tmpfs,disk", help="where RUN_DIR is: tmpfs, disk")
    p.add_argument("--data-dir", type=Path, default=Path("/var/tmp/comfy-init-small"))
    p.add_argument("--results-dir", type=Path, default=outputs.RESULTS_DIR)
    p.add_argument("--warmup-env", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    args.cases = args.cases.split(",")
    args.run_dirs = args.run_dirs.split(",")
    if any(c.split("-")[0] not in ("small", "big") for c in args.cases):
        p.error("--cases: small-N or big-N")
    if any(kv.count("=") < 1 for kv in args.warmup_env):
        p.error("--warmup-env takes KEY=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0 or not COMFY_INIT.exists():
        print(f"bench: run as root, with {COMFY_INIT} installed", file=sys.stderr)
        return 2
    cases = []
    for name in args.cases:
        kind, n = name.split("-")
        root = args.data_dir / name
        print(f"bench: data set {root} ...", file=sys.stderr, flush=True)
        if kind == "small":
            cases.append(small_case(root, int(n), int(args.small_mb * MB)))
        else:
            cases.append(big_case(root, int(n), args.big_mb * MB))
    work = fresh(args.data_dir / "work")
    tmpfs = work / "run-tmpfs"
    tmpfs.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(tmpfs)], check=True)
    run_dirs = {"tmpfs": (TMPFS, tmpfs / "run"), "disk": (DISK, work / "run-disk")}
    extra = dict(kv.split("=", 1) for kv in args.warmup_env)
    cells: dict[tuple[str, str], Cell] = {}
    log = work / "bench.log"
    try:
        for rnd in range(args.repeat):
            for case in cases:
                t = run_cp(case, work, log, check=rnd == 0)
                cell = cells.setdefault((case.name, CP), Cell())
                cell.seconds.append(t.flushed_seconds)
                cell.cpu.append(t.cpu_seconds)
                for where in args.run_dirs:
                    method, run_dir = run_dirs[where]
                    t, report = run_warmup(case, work, run_dir, log, check=rnd == 0, extra=extra)
                    cell = cells.setdefault((case.name, method), Cell())
                    cell.seconds.append(t.flushed_seconds)
                    cell.cpu.append(t.cpu_seconds)
                    cell.report.append(report)
                print(f"bench: round {rnd + 1} {case.name} done", file=sys.stderr, flush=True)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        subprocess.run(["umount", "-l", str(tmpfs)], check=False)
    text = table(cases, cells)
    command = " ".join(["python -m bench.small_files", *sys.argv[1:]])
    stem = args.results_dir / f"small-files-{outputs.stamp()}"
    doc = {
        "command": command,
        "env": {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ} | extra,
        "cells": {f"{c} / {m}": vars(cell) for (c, m), cell in cells.items()},
    }
    outputs.write(stem, f"`{command}`\n\n{text}", doc)
    print(text)
    print(f"bench: written {stem}.md and {stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
