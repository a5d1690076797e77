"""The small-files benchmark's cases and one timed copy of each: ``cp -r && sync``, or
``comfy-init warmup`` with ``RUN_DIR`` where the caller says.

``small-N``: N files of one size in five type folders and three LoRA subfolders;
``big-N``: N checkpoints of the warmup benchmark's data set.  Each tree is made once under
the data directory and reused while its stamp matches.
"""

from __future__ import annotations

import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from bench import caches
from bench.commands import (
    COMFY_INIT,
    BenchError,
    Timing,
    differing,
    timed,
    warmup_env,
    warmup_totals,
)
from bench.model_files import made_before, write_filler, write_stamp
from bench.slowfs import MB
from bench.warmup import dataset

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
    if not made_before(stamp, wanted, {models / rel: size for rel in rels}):
        stamp.unlink(missing_ok=True)
        shutil.rmtree(models, ignore_errors=True)
        for rel in rels:
            write_filler(models / rel, size, seed=rel)
        write_stamp(stamp, wanted)
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
