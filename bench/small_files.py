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
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import caches, dataset
from bench.rounds import COMFY_INIT, REPO
from bench.runs import BenchError, Timing, differing, timed, warmup_env, warmup_totals
from bench.slowfs import MB

SMALL_TYPES = ("loras/set-0", "loras/set-1", "loras/set-2", "vae", "embeddings", "controlnet")
CP, TMPFS, DISK = "cp -r && sync", "warmup, RUN_DIR tmpfs", "warmup, RUN_DIR disk"
METHODS = (CP, TMPFS, DISK)


@dataclass
class Case:
    name: str
    comfyui: Path  # models/ below it
    rels: list[str]  # paths below models/
    nbytes: int

    def sources(self) -> list[Path]:
        return [self.comfyui / "models" / r for r in self.rels]

    def config(self) -> str:
        types = dict.fromkeys(r.split("/", 1)[0] for r in self.rels)
        return "".join(f"{t}/**\n" for t in types)


@dataclass
class Cell:
    seconds: list[float] = field(default_factory=list)  # copy + sync, one per round
    cpu: list[float] = field(default_factory=list)
    report: list[float] = field(default_factory=list)  # the warmup's own totals.seconds


def small_case(root: Path, count: int, size: int) -> Case:
    """``count`` files of ``size`` bytes under ``root/models``, written unless present."""
    rels = [f"{SMALL_TYPES[i % len(SMALL_TYPES)]}/small-{i:04d}.safetensors" for i in range(count)]
    models = root / "models"
    stamp = root / "case.json"
    wanted = {"count": count, "size": size}
    try:
        ok = json.loads(stamp.read_text(encoding="utf-8")) == wanted
    except (FileNotFoundError, json.JSONDecodeError):
        ok = False
    if not ok:
        shutil.rmtree(models, ignore_errors=True)
        for rel in rels:
            path = models / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(size))
        os.sync()
        stamp.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
    return Case(f"small-{count}", root, rels, count * size)


def big_case(root: Path, count: int, size: int) -> Case:
    files = dataset.ensure(root, dataset.Spec(big_count=count, big_bytes=size, small_count=0))
    return Case(f"big-{count}", root, [f.rel for f in files], dataset.total_bytes(files))


def cold(case: Case) -> None:
    os.sync()
    caches.drop_files(case.sources())


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def run_cp(case: Case, work: Path, log: Path, check: bool) -> Timing:
    dest = fresh(work / "cp")
    cold(case)
    t = timed(["cp", "-r", str(case.comfyui / "models"), str(dest)], log)
    if check and (
        bad := differing(zip(case.sources(), (dest / r for r in case.rels), strict=True))
    ):
        raise BenchError(f"{case.name} cp: {len(bad)} copies differ: {bad[:3]}")
    shutil.rmtree(dest)
    return t


def run_warmup(
    case: Case, work: Path, run_dir: Path, log: Path, *, check: bool, extra: dict[str, str]
) -> tuple[Timing, float]:
    cache = fresh(work / "cache")
    for leftover in run_dir.iterdir() if run_dir.exists() else []:
        leftover.unlink()
    config = work / f"{case.name}.conf"
    config.write_text(case.config(), encoding="utf-8")
    env = warmup_env(case.comfyui, cache, run_dir, config, {"LOG_LEVEL": "warning", **extra})
    cold(case)
    t = timed([str(COMFY_INIT), "warmup"], log, env)
    totals = warmup_totals(run_dir)
    if totals["copied"] != len(case.rels):
        raise BenchError(f"{case.name} warmup copied {totals['copied']} of {len(case.rels)}")
    if check and (
        bad := differing(zip(case.sources(), (cache / r for r in case.rels), strict=True))
    ):
        raise BenchError(f"{case.name} warmup: {len(bad)} copies differ: {bad[:3]}")
    shutil.rmtree(cache)
    return t, float(totals["seconds"])


def table(cases: list[Case], cells: dict[tuple[str, str], Cell]) -> str:
    lines = [
        "| case | method | MB | median s | best s | CPU s | report s | vs cp (median) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for case in cases:
        cp = cells[case.name, CP]
        for method in METHODS:
            c = cells.get((case.name, method))
            if c is None or not c.seconds:
                continue
            ratios = [a / b for a, b in zip(cp.seconds, c.seconds, strict=True)]
            report = f"{statistics.median(c.report):.3f}" if c.report else "-"
            lines.append(
                f"| {case.name} | {method} | {case.nbytes // MB} | "
                f"{statistics.median(c.seconds):.3f} | {min(c.seconds):.3f} | "
                f"{statistics.median(c.cpu):.2f} | {report} | {statistics.median(ratios):.2f}x |"
            )
    return "\n".join(lines) + "\n"


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
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
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
    stem = args.results_dir / f"small-files-{time.strftime('%Y%m%d-%H%M%S')}"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".md").write_text(f"`{command}`\n\n{text}", encoding="utf-8")
    doc = {
        "command": command,
        "env": {k: os.environ[k] for k in ("PYTHONPATH",) if k in os.environ} | extra,
        "cells": {f"{c} / {m}": vars(cell) for (c, m), cell in cells.items()},
    }
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(text)
    print(f"bench: written {stem}.md and {stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
