"""Our children: start them with a clean signal state, and reap them (and every orphan).

Starting.  PID 1 catches the stop signals and may have others ignored by whoever started it;
a child must not inherit any of that across exec.  ``os.posix_spawn`` resets every catchable
signal to its default action and empties the signal mask in the child, before the exec, so
there is no window in which the child runs with our handlers' state.  The child gets a
session of its own: a Ctrl-C on the terminal of a dev shell reaches PID 1 only, which then
stops everything in order.  One exception cannot be avoided: glibc's ``posix_spawn`` sets its
two reserved signals (32 and 33, for thread cancellation and setuid across threads) to
"ignore" in the child, and no program can name them in a signal set; glibc installs its own
handlers for them when it needs them, so this has no effect on ComfyUI or supervisord.

Reaping.  As PID 1 (or a child subreaper in a dev shell) every orphan in the tree is
re-parented to us and stays a zombie until we wait for it.  ``waitpid(-1)`` collects them
all, in this one place; a status that belongs to a child we started is kept for its owner,
so no exit status is lost to the general reaping (which is why nothing in PID 1 may use
``subprocess`` wait/poll as well).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from comfy_init import logs
from comfy_init.errors import EnvironmentMissing, signal_exit_code

log = logs.get_logger("pid1")

PR_SET_CHILD_SUBREAPER = 36
# Signals whose disposition cannot be changed; naming them in setsigdef is an error.
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}


def default_signals() -> set[signal.Signals]:
    """Every signal a child should find at its default action."""
    return {s for s in signal.valid_signals() if s not in _UNCATCHABLE}


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    new_session: bool = True,
) -> int:
    """Start ``argv`` (``argv[0]`` an absolute path) and return its pid; never waits."""
    try:
        return os.posix_spawn(
            argv[0],
            list(argv),
            dict(os.environ if env is None else env),
            setsigdef=default_signals(),
            setsigmask=(),
            setsid=new_session,
        )
    except OSError as exc:
        raise EnvironmentMissing(
            f"cannot start {argv[0]}: {exc.strerror} (check that it exists and is executable)"
        ) from None


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
