"""Reaping: the one place that calls ``waitpid``, for our own children and for orphans.

As PID 1 (or a child subreaper in a dev shell) every orphan in the tree is re-parented to
us and stays a zombie until we wait for it.  ``waitpid(-1)`` collects them all; a status
that belongs to a child we started is kept for its owner, so no exit status is lost to the
general reaping (which is why nothing in PID 1 may use ``subprocess`` wait/poll as well).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from dataclasses import dataclass

from comfy_init import logs
from comfy_init.errors import signal_exit_code

log = logs.get_logger("pid1")

PR_SET_CHILD_SUBREAPER = 36


def exit_code(status: int) -> int:
    """A wait status as a shell would show it: the exit code, or 128+N for death by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return signal_exit_code(-code) if code < 0 else code


def describe(code: int) -> str:
    if code > 128 and code - 128 < signal.NSIG:
        return f"killed by {signal.Signals(code - 128).name}"
    return f"exit status {code}"


@dataclass(frozen=True)
class Ended:
    pid: int
    name: str
    code: int


class Reaper:
    """Collects every ended child; remembers the statuses of the ones we started."""

    def __init__(self) -> None:
        self.children: dict[int, str] = {}
        self.orphans_reaped = 0

    def watch(self, pid: int, name: str) -> None:
        self.children[pid] = name

    def alive(self, pid: int) -> bool:
        return pid in self.children

    def reap(self) -> list[Ended]:
        """Wait for every child that has ended, without blocking; return ours."""
        ended: list[Ended] = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            name = self.children.pop(pid, None)
            if name is None:
                self.orphans_reaped += 1
                log.debug("orphan_reaped", pid=pid, code=exit_code(status))
            else:
                ended.append(Ended(pid, name, exit_code(status)))
        return ended


def become_subreaper() -> bool:
    """Ask the kernel to re-parent orphans of our tree to us (when we are not PID 1)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("subreaper_unavailable", error=os.strerror(ctypes.get_errno()))
        return False
    return True
