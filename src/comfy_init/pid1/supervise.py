"""PID 1's main loops: one waits on a worker thread, one on supervisord.

Both sleep in ``Wakeup.wait`` and, on every wake-up, take the stop signals recorded by the
handlers (``stop_signals``) and reap (``Reaper``): signals and children are handled in one place,
in the main thread, whatever the workers are doing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from comfy_init import logs
from comfy_init.errors import EXIT_OK, EXIT_SUPERVISOR
from comfy_init.pid1 import stop_signals
from comfy_init.pid1.children import Reaper, describe
from comfy_init.pid1.stop import Budget, terminate_leftovers
from comfy_init.wakeup import Deadline, Wakeup

log = logs.get_logger("pid1")

T = TypeVar("T")
IDLE_SECONDS = 10.0  # longest sleep when nothing wakes the loop: signals and SIGCHLD wake it
STOP_POLL_SECONDS = 0.2


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@dataclass
class Finished(Generic[T]):
    """How a worker ended: a value, an exception, or cut short by ``signum``."""

    value: T | None = None
    error: BaseException | None = None
    signum: int | None = None
    finished: bool = True  # False: it did not end within the cancel grace


def run_worker(
    work: Callable[[threading.Event], T],
    *,
    name: str,
    reaper: Reaper,
    wakeup: Wakeup,
    cancel_grace: float,
) -> Finished[T]:
    """Run ``work(cancel)`` in a thread while the main thread handles signals and reaping.

    A stop signal sets ``cancel`` and waits up to ``cancel_grace`` seconds for ``work`` to
    tidy up and return.
    """
    cancel = threading.Event()
    done = threading.Event()
    result: Finished[T] = Finished()

    def target() -> None:
        try:
            result.value = work(cancel)
        except BaseException as exc:  # handed to the main thread, which decides
            result.error = exc
        finally:
            done.set()
            wakeup.poke()

    threading.Thread(target=target, name=name, daemon=True).start()
    while not done.is_set():
        signum = stop_signals.take()
        if signum is not None:
            result.signum = signum
            log.info(f"{name}_cancelling", signal=signal_name(signum))
            cancel.set()
            break
        reaper.reap()
        wakeup.wait(IDLE_SECONDS)
    deadline = Deadline(cancel_grace)
    while not done.is_set() and not deadline.passed():
        reaper.reap()
        wakeup.wait(min(STOP_POLL_SECONDS, deadline.left()))
    result.finished = done.is_set()
    if not result.finished:
        log.error(f"{name}_cancel_timeout", seconds=cancel_grace)
    return result


def run_supervisord(
    pid: int,
    *,
    reaper: Reaper,
    wakeup: Wakeup,
    budget: Budget,
    on_stopping: Callable[[], None],
    request_stop: Callable[[], bool],
) -> int:
    """Wait for a stop signal or supervisord's end; stop everything within ``budget``.

    ``request_stop`` asks supervisord to shut down (over its socket) and says whether it
    could; if not, supervisord gets SIGTERM.  Returns the exit code: 0 after a stop signal,
    EXIT_SUPERVISOR when supervisord ended on its own.
    """
    ended_code: int | None = None
    signum: int | None = None
    while ended_code is None and signum is None:
        signum = stop_signals.take()
        ended_code = _reap_child(reaper, pid)
        if ended_code is None and signum is None:
            wakeup.wait(IDLE_SECONDS)
    on_stopping()
    if ended_code is not None:
        log.error("supervisord_exited", pid=pid, how=describe(ended_code), code=ended_code)
        terminate_leftovers(reaper, wakeup, budget)
        return EXIT_SUPERVISOR
    name = signal_name(signum) if signum is not None else "?"
    log.info("stopping", signal=name, budget_seconds=budget.total)
    _stop_supervisord(pid, reaper=reaper, wakeup=wakeup, budget=budget, request=request_stop)
    killed = terminate_leftovers(reaper, wakeup, budget)
    log.info("stopped", signal=name, killed_leftovers=killed)
    return EXIT_OK


def _reap_child(reaper: Reaper, pid: int) -> int | None:
    for ended in reaper.reap():
        if ended.pid == pid:
            return ended.code
    return None


def _stop_supervisord(
    pid: int, *, reaper: Reaper, wakeup: Wakeup, budget: Budget, request: Callable[[], bool]
) -> None:
    """Ask supervisord to shut down, or SIGTERM it (never SIGHUP: that would be a reload),
    and wait for it within the budget.  A second stop signal cuts the wait short: the
    leftovers are then stopped at once.
    """
    deadline = Deadline(budget.supervisord)
    if not request():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    while not deadline.passed():
        code = _reap_child(reaper, pid)
        if code is not None:
            log.info("supervisord_stopped", pid=pid, how=describe(code))
            return
        again = stop_signals.take()
        if again is not None:
            log.warning("stop_hurried", signal=signal_name(again))
            return
        wakeup.wait(min(STOP_POLL_SECONDS, deadline.left()))
    log.warning("supervisord_stop_timeout", pid=pid, seconds=budget.supervisord)
