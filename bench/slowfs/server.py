"""The slow-volume FUSE server process: ``python -m bench.slowfs BACKING MOUNTPOINT``.

Mounts a read-only mirror of BACKING at MOUNTPOINT whose requests are shaped like a
network volume's (see ``shaping``), prints ``ready`` on stdout once the mount is usable,
and serves until it is unmounted (``fusermount3 -u MOUNTPOINT``) or gets SIGTERM/SIGINT
(then it unmounts itself).  SIGUSR1 writes the counters to ``--stats-file``.

Once the mount is up, the FUSE connection's ``max_background`` (how many readahead
requests may be in flight at once, 12 by default) is raised through the FUSE control
filesystem, so that many concurrent readers are limited by the shaping, not by the kernel.
The kernel asks for at most 128 KiB per read request and a sequential reader keeps about
two in flight, whatever the readahead window: that is what makes one stream slow.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pyfuse3
import trio

from bench.slowfs.passthrough import Passthrough
from bench.slowfs.shaping import MB, Shape, Shaper

FSNAME = "slowfs"


def mount_device(mountpoint: Path) -> tuple[int, int] | None:
    """The (major, minor) device of the mount at ``mountpoint``, from /proc/self/mountinfo."""
    target = str(mountpoint)
    with open("/proc/self/mountinfo", encoding="utf-8") as fh:
        for line in fh:
            fields = line.split()
            if fields[4] == target and f"fuse.{FSNAME}" in fields[fields.index("-") + 1]:
                major, minor = fields[2].split(":")
                return int(major), int(minor)
    return None


def tune_kernel(mountpoint: Path, max_background: int) -> None:
    device = mount_device(mountpoint)
    if device is None:
        raise RuntimeError(f"slowfs: {mountpoint} is not mounted after init")
    _, minor = device
    if max_background > 0:
        conns = Path("/sys/fs/fuse/connections")
        if not os.path.ismount(conns):  # the FUSE control filesystem is not always mounted
            subprocess.run(["mount", "-t", "fusectl", "fusectl", str(conns)], check=False)
        conn = conns / str(minor)
        if not conn.is_dir():
            print(f"slowfs: {conn} is missing; max_background left as is", file=sys.stderr)
            return
        (conn / "max_background").write_text(f"{max_background}\n")
        (conn / "congestion_threshold").write_text(f"{max(1, max_background * 3 // 4)}\n")


def write_stats(path: Path, ops: Passthrough, seq: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    doc = {
        "seq": seq,
        "shape": ops.shaper.shape.describe(),
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        **ops.counters.as_dict(),
    }
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def serve(args: argparse.Namespace, ops: Passthrough) -> None:
    async with trio.open_nursery() as nursery:

        async def on_signals() -> None:
            seq = 0
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as sigs:
                async for signum in sigs:
                    if signum == signal.SIGUSR1:
                        if args.stats_file is not None:
                            seq += 1
                            write_stats(args.stats_file, ops, seq)
                            ops.counters.reset_peaks()
                        continue
                    pyfuse3.terminate()
                    return

        nursery.start_soon(on_signals)
        tune_kernel(args.mountpoint, args.max_background)
        print("ready", flush=True)
        await pyfuse3.main(min_tasks=4, max_tasks=args.max_tasks)
        nursery.cancel_scope.cancel()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.slowfs", description=__doc__)
    p.add_argument("backing", type=Path, help="directory to mirror (read-only)")
    p.add_argument("mountpoint", type=Path, help="empty directory to mount on")
    p.add_argument("--latency-ms", type=float, default=1.5, help="round trip per request")
    p.add_argument("--handle-mbps", type=float, default=80, help="MB/s per open handle; 0: no cap")
    p.add_argument("--mount-mbps", type=float, default=400, help="MB/s per mount; 0: no cap")
    p.add_argument(
        "--max-background", type=int, default=64, help="FUSE async requests; 0: kernel's"
    )
    p.add_argument("--io-threads", type=int, default=0, help="pread threads; 0: read inline")
    p.add_argument("--max-tasks", type=int, default=128, help="concurrent FUSE requests served")
    p.add_argument("--stats-file", type=Path, default=None, help="SIGUSR1 writes counters here")
    args = p.parse_args(argv)
    args.backing = args.backing.resolve()
    args.mountpoint = args.mountpoint.absolute()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.backing.is_dir():
        print(f"slowfs: backing directory {args.backing} does not exist", file=sys.stderr)
        return 2
    shape = Shape(
        latency=args.latency_ms / 1000,
        handle_rate=args.handle_mbps * MB,
        mount_rate=args.mount_mbps * MB,
    )
    ops = Passthrough(args.backing, Shaper(shape), io_threads=args.io_threads)
    options = {f"fsname={FSNAME}", f"subtype={FSNAME}", "ro", "allow_other"}
    pyfuse3.init(ops, str(args.mountpoint), options)
    try:
        trio.run(serve, args, ops)
    finally:
        pyfuse3.close(unmount=True)
    return 0
