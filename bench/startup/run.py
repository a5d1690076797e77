"""The startup benchmark's runs and table (see ``__main__`` for what is measured)."""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import caches
from bench.outputs import data_dir_lock
from bench.slowfs import Shape, SlowVolume, Tuning
from bench.startup import program
from comfy_init.readahead import report, startlist
from harness.boots import clean_env
from harness.loopback import free_port, http
from harness.pid1 import Pid1
from harness.polling import wait_for

LOCAL = "local disk, READAHEAD=0"
VOLUME_OFF = "slow volume, READAHEAD=0"
FIRST = "slow volume, first start (records)"
SECOND = "slow volume, second start (reads ahead)"
WARM = "slow volume, page cache warm, READAHEAD=0"
ROWS = (LOCAL, VOLUME_OFF, FIRST, SECOND, WARM)


@dataclass(frozen=True)
class Config:
    size: program.Size
    repeat: int
    shape: Shape
    workdir: Path
    out_dir: Path
    smoke: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Config:
        return cls(
            size=program.SMOKE if args.smoke else program.Size(),
            repeat=1 if args.smoke else max(1, args.repeat),
            shape=Shape(latency=args.latency_ms / 1000),
            workdir=Path(args.workdir) / ("smoke" if args.smoke else "full"),
            out_dir=Path(args.out_dir),
            smoke=args.smoke,
        )


@dataclass
class Run:
    row: str
    ready_seconds: float
    readahead: dict[str, Any] = field(default_factory=dict)


def _tree(cfg: Config) -> Path:
    """The program's backing tree, made once per size and reused."""
    backing = cfg.workdir / "backing"
    stamp = backing / ".size.json"
    want = json.dumps(asdict(cfg.size))
    if not stamp.exists() or stamp.read_text() != want:
        shutil.rmtree(backing, ignore_errors=True)
        program.make(backing, cfg.size)
        stamp.write_text(want)
    (backing / "ComfyUI" / startlist.FOLDER).mkdir(exist_ok=True)
    return backing


@contextlib.contextmanager
def _writable_list_folder(backing: Path, mount: Path) -> Iterator[None]:
    folder = startlist.FOLDER
    target = mount / "ComfyUI" / folder
    subprocess.run(["mount", "--bind", str(backing / "ComfyUI" / folder), str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", str(target)], check=False)


def _start(cfg: Config, comfyui: Path, name: str, readahead: bool, cold: bool) -> Run:
    scratch = cfg.workdir / "s" / str(ROWS.index(name))  # short: a socket path lives there
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = clean_env(
        {
            "COMFYUI_PATH": str(comfyui),
            "COMFYUI_PORT": str(free_port()),
            "COMFYUI_ARGS": "--listen 127.0.0.1",
            "CACHE_PATH": str(scratch / "cache"),
            "RUN_DIR": str(scratch / "run"),
            "SUPERVISORD_CONF": str(scratch / "supervisord.conf"),
            "WARMUP_CONFIG": str(scratch / "none.conf"),
            "SKIP_WARMUP": "1",
            "METRICS": "0",
            "READAHEAD": "1" if readahead else "0",
            "LOG_FORMAT": "json",
        }
    )
    if cold:
        caches.drop_all(fallback=[])
    boot = Pid1(scratch / "logs", env).start()
    try:
        ready = _wait_ready(boot, int(env["COMFYUI_PORT"]), timeout=300)
        found: dict[str, Any] = {}
        if readahead:  # the list is written once ComfyUI answered: wait for it
            found = wait_for(
                lambda: _recorded(scratch / "run" / "readahead-report.json"),
                60,
                "the readahead to write its list",
            )
    finally:
        boot.stop()
    return Run(name, ready, found)


def _recorded(path: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        found = asdict(report.read(path))
        if found["recorded_files"] > 0:
            return found
    return None


def _wait_ready(run: Pid1, port: int, timeout: float) -> float:
    """Seconds from the spawn until the program answers ``GET /system_stats``."""

    def answered() -> float | None:
        if run.proc is not None and run.proc.poll() is not None:
            raise RuntimeError(f"comfy-init start exited {run.proc.returncode}: {run.stderr()}")
        with contextlib.suppress(OSError):
            if http(port, "/system_stats", timeout=1.0)[0] == 200:
                return run.since_start()
        return None

    return wait_for(answered, timeout, "the program to answer /system_stats", step=0.01)


def rounds(cfg: Config) -> list[Run]:
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    backing = _tree(cfg)
    mount = cfg.workdir / "mnt"
    runs: list[Run] = []
    listed = backing / "ComfyUI" / startlist.FOLDER / startlist.NAME
    with (
        data_dir_lock(cfg.workdir),
        SlowVolume(backing, mount, cfg.shape, Tuning(io_threads=8)),
        _writable_list_folder(backing, mount),
    ):
        on_volume = mount / "ComfyUI"
        for n in range(cfg.repeat):
            print(f"round {n + 1}/{cfg.repeat}", flush=True)
            runs.append(_start(cfg, backing / "ComfyUI", LOCAL, readahead=False, cold=True))
            runs.append(_start(cfg, on_volume, VOLUME_OFF, readahead=False, cold=True))
            listed.unlink(missing_ok=True)
            runs.append(_start(cfg, on_volume, FIRST, readahead=True, cold=True))
            runs.append(_start(cfg, on_volume, SECOND, readahead=True, cold=True))
            runs.append(_start(cfg, on_volume, WARM, readahead=False, cold=False))
            for r in runs[-5:]:
                print(f"  {r.row:45} {r.ready_seconds:7.2f} s", flush=True)
    return runs


def best(runs: list[Run]) -> dict[str, Run]:
    found: dict[str, Run] = {}
    for r in runs:
        if r.row not in found or r.ready_seconds < found[r.row].ready_seconds:
            found[r.row] = r
    return found


def table(cfg: Config, runs: list[Run]) -> str:
    b = best(runs)
    local, first, second = (b[k].ready_seconds for k in (LOCAL, FIRST, SECOND))
    s = cfg.size
    lines = [
        f"Program: {s.module_count} modules, libraries {s.native_mb} MiB (DT_NEEDED) + "
        f"{'+'.join(map(str, s.ctypes_mb))} MiB (ctypes); volume: {cfg.shape.describe()}; "
        f"cold page cache except the last row; best of {cfg.repeat}.",
        "",
        "| start | ready (s) | vs local disk |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {k} | {b[k].ready_seconds:.2f} | {b[k].ready_seconds / local:.2f}x |" for k in ROWS
    ]
    ra = b[SECOND].readahead
    lines += [
        "",
        f"- second start vs local disk: **{second / local:.2f}x** (target: within 1.3x)",
        f"- first start vs second start: **{first / second:.2f}x** (target: at least 2x)",
        f"- read ahead at the second start: {ra.get('files', 0)} files, "
        f"{ra.get('bytes', 0) / 1e6:.0f} MB in {ra.get('seconds', 0):.2f} s; "
        f"ComfyUI's opens that found their file read ahead: {ra.get('opens_prefetched', 0)}, "
        f"before it was: {ra.get('opens_early', 0)}, not in the list: "
        f"{ra.get('opens_unlisted', 0)}",
    ]
    return "\n".join(lines) + "\n"


def main(cfg: Config) -> int:
    runs = rounds(cfg)
    text = table(cfg, runs)
    print("\n" + text)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    name = "startup-smoke" if cfg.smoke else "startup"
    (cfg.out_dir / f"{name}.md").write_text(text)
    doc = {
        "machine": platform.platform(),
        "config": {"size": asdict(cfg.size), "shape": cfg.shape.describe(), "repeat": cfg.repeat},
        "runs": [asdict(r) for r in runs],
    }
    (cfg.out_dir / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    return 0
