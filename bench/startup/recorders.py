"""What each way of recording ComfyUI's start costs and sees, on the synthetic program.

    .venv/bin/python -m bench.startup.recorders [--repeat 5]

- audit hook (the one comfy-init uses): the program's import time from local disk, page
  cache warm, with and without the hook (median of ``--repeat``), and how many files it saw;
- ``/proc/<pid>/fd`` + ``maps`` sampled every 5 ms: how many of the hook's files a sampler
  sees at all (``.pyc`` files are open for microseconds);
- inotify: the watches a recorder would need (one per folder of the trees) and the time to
  place them on the slow volume, cold (a walk of the volume before ComfyUI may start).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import inotify_simple

from bench import caches
from bench.slowfs import Shape, SlowVolume, Tuning
from bench.startup import program
from comfy_init.readahead import trace
from comfy_init.readahead.recorder import Recording

IMPORT_ONLY = "exec(open('main.py').read().split('class Handler')[0])"


def _start(comfyui: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(comfyui / "venv" / "bin" / "python"), "-c", IMPORT_ONLY],
        cwd=comfyui,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )


def hook_cost(comfyui: Path, scratch: Path, repeat: int) -> tuple[float, float, int]:
    """(median seconds without, with the hook, files the hook saw)."""
    rec = Recording(scratch / "trace", comfyui.parent)
    plain: list[float] = []
    hooked: list[float] = []
    for _ in range(repeat):
        for env, out in (({}, plain), (None, hooked)):
            rec.prepare()
            t = time.perf_counter()
            proc = _start(comfyui, rec.environment(None) if env is None else env)
            proc.wait()
            out.append(time.perf_counter() - t)
    seen, _ = rec.collect(float("inf"))
    return statistics.median(plain), statistics.median(hooked), len(seen)


def sampled(comfyui: Path, period: float = 0.005) -> int:
    """Files under the tree a /proc sampler sees while the program imports."""
    proc = _start(comfyui, {})
    found: set[str] = set()
    while proc.poll() is None:
        fd_dir = Path(f"/proc/{proc.pid}/fd")
        try:
            for fd in fd_dir.iterdir():
                try:
                    found.add(os.readlink(fd))
                except OSError:
                    continue
            found.update(trace.mapped_files(Path(f"/proc/{proc.pid}/maps").read_text()))
        except OSError:
            break
        time.sleep(period)
    root = str(comfyui.parent) + "/"
    return len({p for p in found if p.startswith(root)})


def inotify_walk(backing: Path, mount: Path) -> tuple[int, float]:
    """(watches needed, seconds to place them on the cold slow volume)."""
    with SlowVolume(backing, mount, Shape(), Tuning(io_threads=8)):
        caches.drop_all(fallback=[])
        ino = inotify_simple.INotify()
        t = time.perf_counter()
        watches = 0
        for folder, _, _ in os.walk(mount / "ComfyUI"):
            ino.add_watch(folder, inotify_simple.flags.OPEN)
            watches += 1
        seconds = time.perf_counter() - t
        ino.close()
    return watches, seconds


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.startup.recorders", description=__doc__)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--workdir", default="/var/tmp/comfy-init-bench/startup-recorders")
    args = p.parse_args()
    work = Path(args.workdir)
    backing = work / "backing"
    if not (backing / "ComfyUI" / "main.py").exists():
        program.make(backing, program.Size())
    comfyui = backing / "ComfyUI"
    scratch = work / "scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    plain, hooked, hook_files = hook_cost(comfyui, scratch, args.repeat)
    sampler_files = sampled(comfyui)
    watches, walk = inotify_walk(backing, work / "mnt")
    print("| recorder | cost | files seen |")
    print("|---|---|---:|")
    print(
        f"| audit hook | import {plain:.3f} s -> {hooked:.3f} s "
        f"({(hooked - plain) * 1000:+.0f} ms, median of {args.repeat}) | {hook_files} |"
    )
    print(f"| /proc fd + maps every 5 ms | a thread polling | {sampler_files} |")
    print(f"| inotify IN_OPEN | {watches} watches, {walk:.2f} s to place, cold volume | - |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
