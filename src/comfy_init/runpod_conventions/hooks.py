"""The start hooks of RunPod images: ``/pre_start.sh`` before the warmup, ``/post_start.sh``
once ComfyUI answers.

A hook runs as ``bash <file>`` (as RunPod's start script runs it: no exec bit needed), in a
session of its own, writing to the container's output, for at most ``HOOK_TIMEOUT``
seconds: then its process group gets SIGTERM, and SIGKILL ``KILL_GRACE_SECONDS`` later.
A hook that fails or runs out of time is logged and the start goes on.  What a hook leaves
running in the background when it ends (a daemon it started) is left alone.

``run`` waits the PID 1 way (``Reaper`` and ``Wakeup``, no ``subprocess``), so a stop signal
that arrives meanwhile ends the hook the same way and is handed back to the caller.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from comfy_init import logs
from comfy_init.comfyui import api
from comfy_init.errors import signal_exit_code
from comfy_init.pid1 import stop_signals
from comfy_init.pid1.children import Reaper, describe, spawn
from comfy_init.wakeup import Deadline, Wakeup

log = logs.get_logger("hooks")

PRE_START = Path("/pre_start.sh")
POST_START = Path("/post_start.sh")
KILL_GRACE_SECONDS = 2.0
IDLE_SECONDS = 10.0  # SIGCHLD wakes the loop at once; this only bounds the sleep
READY_POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Outcome:
    code: int | None  # exit code (128+N if killed by N); None if it had to be stopped
    seconds: float
    timed_out: bool = False
    signum: int | None = None  # a stop signal taken while it ran (the caller acts on it)


def hook_argv(path: Path) -> list[str]:
    """How a hook file is run: with bash, as RunPod runs it (sh where bash is missing)."""
    shell = shutil.which("bash") or "/bin/sh"
    return [shell, str(path)]


def run(
    argv: Sequence[str], *, name: str, timeout: float, reaper: Reaper, wakeup: Wakeup
) -> Outcome:
    """Run ``argv`` to its end, to ``timeout``, or to a stop signal, whichever is first."""
    started = time.monotonic()
    pid = spawn(argv)  # its own session: pid is also its process group
    reaper.watch(pid, name)
    deadline = Deadline(timeout)
    while True:
        code = _ended(reaper, pid)
        if code is not None:
            return Outcome(code=code, seconds=time.monotonic() - started)
        signum = stop_signals.take()
        if signum is not None or deadline.passed():
            _stop_group(pid, reaper, wakeup)
            return Outcome(
                code=None,
                seconds=time.monotonic() - started,
                timed_out=signum is None,
                signum=signum,
            )
        wakeup.wait(min(IDLE_SECONDS, deadline.left()))


def _ended(reaper: Reaper, pid: int) -> int | None:
    for ended in reaper.reap():
        if ended.pid == pid:
            return ended.code
    return None


def _stop_group(pid: int, reaper: Reaper, wakeup: Wakeup) -> None:
    """SIGTERM the hook's process group, SIGKILL what is left after the grace; reap it."""
    for signum, grace in ((signal.SIGTERM, KILL_GRACE_SECONDS), (signal.SIGKILL, 1.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signum)
        deadline = Deadline(grace)
        while not deadline.passed():
            if _ended(reaper, pid) is not None:
                return
            wakeup.wait(min(0.05, deadline.left()))


def run_hook(
    path: Path, *, name: str, timeout: float, reaper: Reaper, wakeup: Wakeup
) -> Outcome | None:
    """Run the hook file at ``path`` if there is one, and log how it ended."""
    if not path.is_file():
        log.debug("hook_absent", hook=name, path=str(path))
        return None
    log.info("hook_started", hook=name, path=str(path), timeout_seconds=timeout)
    outcome = run(hook_argv(path), name=name, timeout=timeout, reaper=reaper, wakeup=wakeup)
    seconds = round(outcome.seconds, 3)
    if outcome.signum is not None:
        log.warning("hook_interrupted", hook=name, path=str(path), seconds=seconds)
    elif outcome.timed_out:
        log.error(
            "hook_timed_out",
            hook=name,
            path=str(path),
            seconds=seconds,
            effect="stopped; the start goes on",
            hint="make the hook faster, run long work in the background, or raise HOOK_TIMEOUT",
        )
    elif outcome.code != 0:
        log.error(
            "hook_failed",
            hook=name,
            path=str(path),
            how=describe(outcome.code or 0),
            seconds=seconds,
            effect="the start goes on",
        )
    else:
        log.info("hook_finished", hook=name, path=str(path), seconds=seconds)
    return outcome


def wait_until_answering(port: int, wakeup: Wakeup, poll: float = READY_POLL_SECONDS) -> int | None:
    """Wait until ComfyUI answers ``GET /system_stats`` on ``port`` (however long that
    takes: a warmup, or a volume that has no ComfyUI yet); a stop signal ends the wait and
    is returned, else None."""
    while True:
        signum = stop_signals.take()
        if signum is not None:
            return signum
        try:
            api.system_stats(port, timeout=poll)
        except api.ComfyUIUnavailable:
            wakeup.wait(poll)
        else:
            return None


def post_start(path: Path, *, port: int, timeout: float) -> int:
    """``comfy-init hook post-start``: once ComfyUI answers, run ``path``; the exit code is
    0 whatever the hook did (it is logged: a failing hook is not the program failing), or
    128+N when a stop signal ended it."""
    wakeup = Wakeup()
    signum = wait_until_answering(port, wakeup)
    if signum is None:
        outcome = run_hook(path, name="post_start", timeout=timeout, reaper=Reaper(), wakeup=wakeup)
        signum = outcome.signum if outcome is not None else None
    return 0 if signum is None else signal_exit_code(signum)
