"""Mount the slow volume from Python: ``with SlowVolume(backing, mountpoint, shape): ...``.

The FUSE server runs in a process of its own (its own interpreter, so the reader's GIL and
the server's never contend), started with the same Python.  Entering waits for its
``ready`` line; leaving unmounts with ``fusermount3 -u`` (lazily if something still holds
the mount), waits for the server to exit, and kills it if it does not within the deadline.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from bench import REPO
from bench.slowfs.server import mount_device
from bench.slowfs.shaping import MB, Shape
from harness.polling import WaitTimeout, wait_for


class SlowVolumeError(RuntimeError):
    pass


@dataclass(frozen=True)
class Tuning:
    """Kernel and server knobs; the defaults make the server no bottleneck on 2 cores.

    ``io_threads`` 0 reads the backing files inline, about half the CPU of handing each
    read to a thread; right when the backing files are in the page cache (the benchmark
    warms them).  Give it threads when the backing store is cold.
    """

    max_background: int = 64
    io_threads: int = 0
    max_tasks: int = 128


@dataclass
class SlowVolume:
    backing: Path
    mountpoint: Path
    shape: Shape = field(default_factory=Shape)
    tuning: Tuning = field(default_factory=Tuning)
    start_timeout: float = 15.0
    stop_timeout: float = 15.0
    _proc: subprocess.Popen[bytes] | None = None
    _stats_seq: int = 0

    @property
    def stats_file(self) -> Path:
        return self.mountpoint.parent / f".{self.mountpoint.name}.slowfs-stats.json"

    def command(self) -> list[str]:
        s, t = self.shape, self.tuning
        return [
            sys.executable,
            "-m",
            "bench.slowfs",
            str(self.backing),
            str(self.mountpoint),
            f"--latency-ms={s.latency * 1000:g}",
            f"--handle-mbps={s.handle_rate / MB:g}",
            f"--mount-mbps={s.mount_rate / MB:g}",
            f"--max-background={t.max_background}",
            f"--io-threads={t.io_threads}",
            f"--max-tasks={t.max_tasks}",
            f"--stats-file={self.stats_file}",
        ]

    def __enter__(self) -> SlowVolume:
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        if mount_device(self.mountpoint.absolute()) is not None:
            raise SlowVolumeError(
                f"slow volume: {self.mountpoint} is already mounted "
                f"(unmount it: fusermount3 -u {self.mountpoint})"
            )
        env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        self._proc = subprocess.Popen(self.command(), stdout=subprocess.PIPE, env=env, cwd=REPO)
        assert self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], self.start_timeout)
        line = self._proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            status = self._proc.poll()
            self._stop()
            raise SlowVolumeError(
                f"slow volume: the FUSE server did not become ready within {self.start_timeout} s "
                f"(exit status {status}; run {' '.join(self.command())} to see why)"
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """The server's counters now (reads, bytes, opens, CPU seconds: totals since the mount;
        ``max_inflight_reads``, ``max_open_handles``: peaks since the previous call)."""
        if self._proc is None or self._proc.poll() is not None:
            raise SlowVolumeError("slow volume: the FUSE server is not running")
        self._stats_seq += 1
        self._proc.send_signal(signal.SIGUSR1)
        seq = self._stats_seq

        def fresh() -> dict[str, Any] | None:
            try:
                doc: dict[str, Any] = json.loads(self.stats_file.read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            return doc if doc.get("seq", 0) >= seq else None

        try:
            return wait_for(fresh, timeout, "stats from the FUSE server", step=0.01)
        except WaitTimeout:
            raise SlowVolumeError(
                f"slow volume: no stats from the FUSE server within {timeout} s"
            ) from None

    def _stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if mount_device(self.mountpoint.absolute()) is not None:
            done = subprocess.run(
                ["fusermount3", "-u", str(self.mountpoint)], capture_output=True, check=False
            )
            if done.returncode != 0:  # busy: detach now, the kernel finishes when it is free
                subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], check=False)
        try:
            proc.wait(timeout=self.stop_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=self.stop_timeout)
        if proc.stdout is not None:
            proc.stdout.close()
        self.stats_file.unlink(missing_ok=True)
        self._proc = None
