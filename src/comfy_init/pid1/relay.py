"""Relay program logs to the container's stdout: every new line of ``$RUN_DIR/logs/*.log``, once.

supervisord writes each program's output to a rotating file (so ``supervisorctl tail``
works); ``docker logs`` wants it on PID 1's stdout.  A follower thread reads what was
appended to each file since last time and writes it to stdout unchanged.  It survives
supervisord's rotation (the file is renamed and a new one created: the rest of the old one
is read first, then the new one from its start) and truncation.  Files that exist when the
relay starts are followed from their end, so a restart never replays old output.  A line
still without its newline after ``PARTIAL_SECONDS`` (a progress bar redrawn with ``\\r``) is
written as it is; the rest follows when it comes, nothing twice.

The thread sleeps until something happens: inotify on the log folder (a write, a new file,
a file renamed into place) wakes it at once; otherwise it wakes only when an unfinished line
falls due and for a slow safety look every ``poll_seconds``.  A line after a quiet spell is
read at once; a busy log does not wake it for every write: once writes come less than
``GAP_SECONDS`` after a read, the thread lets them gather until that much time has passed and
reads them together (so a stream costs at most one wake-up per ``GAP_SECONDS``, and no line
waits longer).  Where inotify is unavailable (or the folder is missing) it looks every
``FALLBACK_POLL_SECONDS`` instead, trying to watch again each time.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from inotify_simple import INotify, flags

from comfy_init import logs
from comfy_init.wakeup import WakePipe

log = logs.get_logger("relay")

POLL_SECONDS = 5.0  # the safety look when inotify is watching
FALLBACK_POLL_SECONDS = 0.2  # the look when it is not
PARTIAL_SECONDS = 1.0
GAP_SECONDS = 0.1  # least time between two reads of a busy log: its lines' longest wait
READ_BYTES = 1 << 16
JOIN_SECONDS = 2.0
MASK = flags.MODIFY | flags.CREATE | flags.MOVED_TO


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

    def due(self) -> float | None:
        """When the unfinished line (if any) is to be written as it is."""
        return self.partial_since + PARTIAL_SECONDS if self.partial else None

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
        self._wake = WakePipe()  # poked by stop()
        self._inotify: INotify | None = None
        self._watching = False
        self._last_read = 0.0
        self._busy = False  # the last wake came less than GAP_SECONDS after a read

    def _paths(self) -> list[Path]:
        try:
            return sorted(p for p in self.log_dir.glob("*.log"))
        except OSError:
            return []

    def start(self) -> LogRelay:
        self._watch()
        self._thread.start()
        return self

    def pump(self, *, final: bool = False) -> None:
        """Relay whatever is new in every log file now."""
        for path in self._paths():
            if path not in self._followers:
                self._followers[path] = _Follower(path, from_end=False)
        self._relay(self._followers.values(), final=final)

    def _relay(self, followers: Iterable[_Follower], *, final: bool = False) -> None:
        now = time.monotonic()
        for follower in list(followers):
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

    # --- the thread: sleep until inotify, an unfinished line or the safety look wakes it
    def _watch(self) -> None:
        """Watch the log folder with inotify if possible (else the thread polls)."""
        if self._watching:
            return
        try:
            if self._inotify is None:
                self._inotify = INotify()
            self._inotify.add_watch(self.log_dir, MASK)
        except OSError as exc:
            log.debug("relay_not_watching", folder=str(self.log_dir), error=str(exc))
            return
        self._watching = True

    def _run(self) -> None:
        next_look = 0.0  # first look at once: what was written before the watch began
        while not self._stop.is_set():
            changed = None
            if time.monotonic() < next_look:
                changed = self._sleep(self._timeout(time.monotonic(), next_look))
                if self._stop.is_set():
                    return
            self._last_read = time.monotonic()
            if changed is None or not changed <= self._followers.keys():
                self._watch()
                self.pump()
            else:
                self._relay(self._followers[p] for p in changed)
            if changed is None:
                next_look = time.monotonic() + self.poll_seconds

    def _timeout(self, now: float, next_look: float) -> float:
        wake = next_look if self._watching else now + FALLBACK_POLL_SECONDS
        for follower in self._followers.values():
            due = follower.due()
            if due is not None:
                wake = min(wake, due)
        return max(0.0, wake - now)

    def _sleep(self, timeout: float) -> set[Path] | None:
        """Wait up to ``timeout``; the files that changed, or None: look at every file
        (time is up, a file appeared, the kernel's queue overflowed, the watch is gone)."""
        end = time.monotonic() + timeout
        changed_now = False
        if self._busy:  # writes keep coming: let the next ones gather, then look once
            self._hold(min(end, self._last_read + GAP_SECONDS) - time.monotonic())
            changed_now = self._inotify_ready(0.0)
            self._busy = changed_now
        if not changed_now:
            changed_now = self._inotify_ready(end - time.monotonic())
            if changed_now and time.monotonic() - self._last_read < GAP_SECONDS:
                self._busy = True  # a write soon after the last read: gather the next ones
                self._hold(self._last_read + GAP_SECONDS - time.monotonic())
        if not changed_now or self._inotify is None:
            return None
        changed: set[Path] = set()
        for event in self._inotify.read(timeout=0):
            if event.mask & (flags.Q_OVERFLOW | flags.IGNORED):
                self._watching = not event.mask & flags.IGNORED
                return None
            if not event.name.endswith(".log"):
                continue  # a rotated backup (comfyui.log.1) is not followed
            if event.mask & (flags.CREATE | flags.MOVED_TO):
                return None
            changed.add(self.log_dir / event.name)
        return changed

    def _inotify_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for inotify events (or the stop wake-up): are there any?"""
        fds = () if self._inotify is None else (self._inotify.fileno(),)
        return bool(self._wake.wait(timeout, *fds))

    def _hold(self, seconds: float) -> None:
        """Sleep ``seconds`` unless stopped meanwhile."""
        if seconds > 0 and not self._stop.is_set():
            self._wake.wait(seconds)

    def stop(self) -> None:
        """Stop following, after relaying what is left (unfinished lines included)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.poke()
        if self._thread.is_alive():
            self._thread.join(timeout=JOIN_SECONDS)
        self.pump(final=True)
        for follower in self._followers.values():
            follower.close()
        if not self._thread.is_alive():  # else it may still read them; they die with us
            if self._inotify is not None:
                self._inotify.close()
            self._wake.close()
