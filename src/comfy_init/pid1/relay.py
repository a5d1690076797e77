"""Relay program logs to the container's stdout: every new line of ``$RUN_DIR/logs/*.log``, once.

supervisord writes each program's output to a rotating file (so ``supervisorctl tail``
works); ``docker logs`` wants it on PID 1's stdout.  A follower thread reads what was
appended to each file since last time and writes it to stdout unchanged.  It survives
supervisord's rotation (the file is renamed and a new one created: the rest of the old one
is read first, then the new one from its start) and truncation.  Files that exist when the
relay starts are followed from their end, so a restart never replays old output.  A line
still without its newline after ``PARTIAL_SECONDS`` (a progress bar redrawn with ``\\r``) is
written as it is; the rest follows when it comes, nothing twice.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from comfy_init import logs

log = logs.get_logger("relay")

POLL_SECONDS = 0.2
PARTIAL_SECONDS = 1.0
READ_BYTES = 1 << 16


class _Follower:
    """One log path: the open file, where we are in it, and an unfinished line."""

    def __init__(self, path: Path, *, from_end: bool) -> None:
        self.path = path
        self.fh: int | None = None
        self.ino: int | None = None
        self.from_end = from_end
        self.partial = b""
        self.partial_since = 0.0
        if from_end:  # opened now, so what is appended from now on is relayed
            self._open()

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        self.fh = fd
        self.ino = os.fstat(fd).st_ino
        if self.from_end:
            os.lseek(fd, 0, os.SEEK_END)
            self.from_end = False
        return True

    def _drain(self, fd: int) -> bytes:
        chunks = []
        while chunk := os.read(fd, READ_BYTES):
            chunks.append(chunk)
        return b"".join(chunks)

    def poll(self, now: float, *, final: bool = False) -> bytes:
        """Complete new lines (and overdue partial lines) since the last poll."""
        if self.fh is None and not self._open():
            return self._complete(b"", now, final)
        fd = self.fh
        if fd is None:
            return b""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        if st is not None and st.st_ino == self.ino and st.st_size < os.lseek(fd, 0, os.SEEK_CUR):
            os.lseek(fd, 0, os.SEEK_SET)  # truncated in place
        data = self._drain(fd)
        if st is not None and st.st_ino != self.ino:  # rotated: old file done, follow the new
            os.close(fd)
            self.fh = None
            if self._open() and self.fh is not None:
                data += self._drain(self.fh)
        return self._complete(data, now, final)

    def _complete(self, data: bytes, now: float, final: bool) -> bytes:
        if data:
            if not self.partial:
                self.partial_since = now
            self.partial += data
        cut = self.partial.rfind(b"\n") + 1
        out, self.partial = self.partial[:cut], self.partial[cut:]
        if self.partial and cut:
            self.partial_since = now
        overdue = self.partial and (final or now - self.partial_since >= PARTIAL_SECONDS)
        if overdue:
            out, self.partial = out + self.partial, b""
        return out

    def close(self) -> None:
        if self.fh is not None:
            os.close(self.fh)
            self.fh = None


class LogRelay:
    """Follows ``log_dir/*.log`` in a thread and writes new output to ``out_fd``."""

    def __init__(self, log_dir: Path, out_fd: int = 1, poll_seconds: float = POLL_SECONDS) -> None:
        self.log_dir = log_dir
        self.out_fd = out_fd
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._followers: dict[Path, _Follower] = {
            p: _Follower(p, from_end=True) for p in self._paths()
        }
        self._thread = threading.Thread(target=self._run, name="log-relay", daemon=True)

    def _paths(self) -> list[Path]:
        try:
            return sorted(p for p in self.log_dir.glob("*.log"))
        except OSError:
            return []

    def start(self) -> LogRelay:
        self._thread.start()
        return self

    def pump(self, *, final: bool = False) -> None:
        """Relay whatever is new in every log file now."""
        now = time.monotonic()
        for path in self._paths():
            if path not in self._followers:
                self._followers[path] = _Follower(path, from_end=False)
        for follower in self._followers.values():
            try:
                data = follower.poll(now, final=final)
            except OSError as exc:
                log.warning("relay_read_failed", path=str(follower.path), error=str(exc))
                continue
            if data:
                self._write(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.out_fd, view) :]
        except OSError:  # stdout closed (no reader): drop, never block shutdown
            pass

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.pump()

    def stop(self) -> None:
        """Stop following, after relaying what is left (unfinished lines included)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2 * self.poll_seconds + 1)
        self.pump(final=True)
        for follower in self._followers.values():
            follower.close()
