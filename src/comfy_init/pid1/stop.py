"""Bounded shutdown: the time budget, and the final TERM-then-KILL of every process left.

``docker stop`` sends SIGTERM and, 10 s later, SIGKILL.  PID 1 must be gone before that.
The budget (defaults):

    supervisord is asked to shut down over its socket      ~0 s  (SIGTERM would wait for
                                                                  its 1 s loop tick)
    ComfyUI (stopped first): SIGINT, SIGKILL after           6 s  (COMFYUI_STOP_SECONDS)
    supervisord's loop notices the grace is over          <= 1 s
    --------------------------------------------------- supervisord phase  7.5 s
    every process left: SIGTERM, then SIGKILL after        0.5 s
    reap                                                 <= 0.5 s
    --------------------------------------------------- total              8.5 s

supervisord stops one program at a time, so its own worst case is the sum of every
program's ``stopwaitsecs`` plus a loop tick each; when that does not fit, PID 1's deadline
wins: whatever still runs at the end of the supervisord phase (the sidecar, a setsid'd
escapee) gets SIGTERM, then SIGKILL.  A ``COMFYUI_STOP_SECONDS`` above 6 grows the
supervisord phase to that plus 1.5 s; docker's grace must then grow too (``docker stop
-t``), which is logged at start.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass
from pathlib import Path

from comfy_init import logs
from comfy_init.pid1.children import Reaper
from comfy_init.wakeup import Deadline, Wakeup

log = logs.get_logger("pid1")

DOCKER_GRACE_SECONDS = 10.0
MIN_SUPERVISORD_SECONDS = 7.5
SUPERVISORD_SLACK_SECONDS = 1.5  # supervisord's 1 s loop tick after the grace, and a margin
TERM_SECONDS = 0.5
KILL_SECONDS = 0.5
POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Budget:
    supervisord: float  # for supervisord to stop its programs and exit
    term: float  # between the final SIGTERM and SIGKILL
    kill: float  # to reap after SIGKILL

    @property
    def total(self) -> float:
        return self.supervisord + self.term + self.kill


def budget(comfyui_stop_seconds: float) -> Budget:
    return Budget(
        supervisord=max(MIN_SUPERVISORD_SECONDS, comfyui_stop_seconds + SUPERVISORD_SLACK_SECONDS),
        term=TERM_SECONDS,
        kill=KILL_SECONDS,
    )


def _running(pid: int, proc: Path) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = (proc / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _parent(pid: int, proc: Path) -> int | None:
    try:
        return int((proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def victims(self_pid: int, *, whole_namespace: bool, proc: Path = Path("/proc")) -> list[int]:
    """Processes to stop: everything else in our PID namespace when we are its PID 1,
    else only our descendants (never anything else on a dev machine)."""
    pids = sorted(int(p.name) for p in proc.iterdir() if p.name.isdigit())
    if whole_namespace:
        return [p for p in pids if p != self_pid and _running(p, proc)]
    children: dict[int, list[int]] = {}
    for pid in pids:
        parent = _parent(pid, proc)
        if parent is not None:
            children.setdefault(parent, []).append(pid)
    found: list[int] = []
    todo = list(children.get(self_pid, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return sorted(p for p in found if _running(p, proc))


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _wait_gone(pids: list[int], deadline: Deadline, reaper: Reaper, wakeup: Wakeup) -> list[int]:
    while True:
        reaper.reap()
        left = [p for p in pids if _running(p, Path("/proc"))]
        if not left or deadline.passed():
            return left
        wakeup.wait(min(POLL_SECONDS, deadline.left()))


def terminate_leftovers(reaper: Reaper, wakeup: Wakeup, plan: Budget) -> int:
    """SIGTERM every process left, SIGKILL those still there after ``plan.term``; reap.

    Returns how many had to be killed.
    """
    me = os.getpid()
    whole = me == 1
    pids = victims(me, whole_namespace=whole)
    if not pids:
        return 0
    log.info("stopping_leftovers", pids=",".join(map(str, pids)), signal="SIGTERM")
    _signal_all(pids, signal.SIGTERM)
    _wait_gone(pids, Deadline(plan.term), reaper, wakeup)
    stubborn = victims(me, whole_namespace=whole)
    if stubborn:
        log.warning("killing_leftovers", pids=",".join(map(str, stubborn)), signal="SIGKILL")
        _signal_all(stubborn, signal.SIGKILL)
        left = _wait_gone(stubborn, Deadline(plan.kill), reaper, wakeup)
        if left:
            log.error("leftovers_survived_kill", pids=",".join(map(str, left)))
    return len(stubborn)
