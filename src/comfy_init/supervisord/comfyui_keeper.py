"""Keep ComfyUI up through supervisord: readiness lines, and a restart after it gave up.

Crash loops, in two layers:
1. supervisord retries an early crash (one within ``startsecs``) ``startretries`` times with
   a growing delay (1 s, 2 s, 3 s), then gives up: the program is FATAL.  A crash after
   ``startsecs`` is restarted at once; such a loop is no faster than one start per
   ``startsecs`` and each exit is in supervisord's log.
2. A FATAL ComfyUI would stay down for good, silently.  The keeper polls supervisord,
   logs ``comfyui_gave_up`` (an error, with supervisord's reason) and starts ComfyUI again
   after ``COMFYUI_RESTART_BACKOFF`` seconds, doubling at every give-up up to ten times
   that; the delay is forgotten once ComfyUI has stayed up for that longest delay.

Readiness: each time a new ComfyUI process appears, ``GET /system_stats`` is polled until it
answers, then ``comfyui_ready`` is logged with the seconds since the container started.

Pace (``next_poll``): supervisord is asked every ``POLL_SECONDS`` only while ComfyUI is on
its way up (STARTING, BACKOFF, RUNNING but not answering yet) or supervisord does not
answer.  Once ComfyUI answered, or while it is down for good (FATAL, STOPPED, EXITED), one
look every ``SETTLED_SECONDS`` is enough, except that a restart due sooner is kept to the
second.  The answering ComfyUI's exit is seen at once all the same: the thread also sleeps on
a pidfd of that process, so a crash or kill ends the slow pace the moment it happens.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

from comfy_init import logs
from comfy_init.comfyui import api
from comfy_init.supervisord import rpc
from comfy_init.supervisord.comfyui_process import COMFYUI, ProgramStatus
from comfy_init.wakeup import WakePipe

log = logs.get_logger("watch")

POLL_SECONDS = 1.0  # while ComfyUI is on its way up
SETTLED_SECONDS = 5.0  # once it answers, or is down for good
ON_ITS_WAY = ("STARTING", "BACKOFF")
PROBE_TIMEOUT = 1.0
BACKOFF_GROWTH = 2.0
BACKOFF_CAP_FACTOR = 10.0


@dataclass(frozen=True)
class Backoff:
    """The crash-loop restart delays: ``initial * 2**n``, at most ``initial * 10``."""

    initial: float

    @property
    def cap(self) -> float:
        return self.initial * BACKOFF_CAP_FACTOR

    def delay(self, give_ups: int) -> float:
        """Seconds to wait after the ``give_ups``-th give-up (0 for the first)."""
        return min(self.cap, self.initial * BACKOFF_GROWTH ** min(give_ups, 64))


def next_poll(
    statename: str | None,
    answering: bool,
    now: float,
    restart_at: float | None,
    *,
    fast: float = POLL_SECONDS,
    slow: float = SETTLED_SECONDS,
) -> float:
    """Seconds until the next look at supervisord.

    ``statename`` is None when supervisord did not answer; ``answering``: the process in
    that state has answered ``/system_stats`` and is still alive.
    """
    if statename is None or statename in ON_ITS_WAY:
        return fast
    if statename == "RUNNING" and not answering:
        return fast
    wait = slow
    if restart_at is not None:
        wait = min(wait, max(0.0, restart_at - now))
    return wait


class _Nap:
    """The watcher's sleep: ends early when ``wake()`` is called or the watched process
    (``watch(pid)``, through a pidfd) exits."""

    def __init__(self) -> None:
        self._pipe = WakePipe()
        self.pid = 0  # the process watched
        self._pidfd: int | None = None

    def watch(self, pid: int) -> bool:
        """Watch ``pid`` from now on (0: none); False if it is already gone."""
        if pid == self.pid:
            return True
        if self._pidfd is not None:
            os.close(self._pidfd)
        self.pid, self._pidfd = pid, None
        if pid:
            try:
                self._pidfd = os.pidfd_open(pid)
            except ProcessLookupError:
                self.pid = 0
                return False
            except OSError as exc:  # no pidfd here: an exit is seen at the next slow look
                log.debug("comfyui_exit_unwatched", pid=pid, error=str(exc))
        return True

    def sleep(self, seconds: float) -> int:
        """Sleep up to ``seconds``; the pid of the watched process if it exited, else 0."""
        pidfd = self._pidfd
        fds = () if pidfd is None else (pidfd,)
        if pidfd is None or pidfd not in self._pipe.wait(seconds, *fds):
            return 0
        gone = self.pid
        self.watch(0)
        return gone

    def wake(self) -> None:
        self._pipe.poke()

    def close(self) -> None:
        self.watch(0)
        self._pipe.close()


class ComfyUIKeeper:
    """A thread that asks supervisord about ``comfyui``: every ``poll_seconds`` while it is
    on its way up, every ``settled_seconds`` once it answers or is down for good."""

    def __init__(
        self,
        client: rpc.Client,
        *,
        port: int,
        container_started: float,
        backoff: Backoff,
        poll_seconds: float = POLL_SECONDS,
        settled_seconds: float = SETTLED_SECONDS,
    ) -> None:
        self.client = client
        self.status = ProgramStatus(client)
        self.port = port
        self.container_started = container_started
        self.backoff = backoff
        self.poll_seconds = poll_seconds
        self.settled_seconds = settled_seconds
        self.statename: str | None = None  # at the last look; None: supervisord silent
        self.give_ups = 0
        self.restart_at: float | None = None
        self.ready_pid = 0
        self.gone_pid = 0  # an answering process seen to exit (before supervisord says so)
        self.running_since: float | None = None
        self._stop = threading.Event()
        self._nap = _Nap()
        self._thread = threading.Thread(target=self._run, name="comfyui-keeper", daemon=True)

    def start(self) -> ComfyUIKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (never restarts ComfyUI afterwards); does not wait for a probe."""
        self._stop.set()
        self._nap.wake()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                gone = self._nap.sleep(self._next_poll(time.monotonic()))
                if gone:
                    self.gone_pid = gone
                    log.debug("comfyui_exit_seen", pid=gone)
                if self._stop.is_set():
                    return
                try:
                    self.step(time.monotonic())
                except (rpc.SupervisordUnavailable, rpc.RpcFault) as exc:
                    self.statename = None
                    log.debug("watch_poll_failed", error=str(exc))
                if not self._nap.watch(self._answering_pid()):
                    self.gone_pid = self.ready_pid
        finally:
            self._nap.close()

    def _answering_pid(self) -> int:
        """The pid of the RUNNING ComfyUI that answered and is not known to be gone, or 0."""
        pid = self.ready_pid
        return pid if self.statename == "RUNNING" and pid == self.status.pid != self.gone_pid else 0

    def _next_poll(self, now: float) -> float:
        return next_poll(
            self.statename,
            self._answering_pid() != 0,
            now,
            self.restart_at,
            fast=self.poll_seconds,
            slow=self.settled_seconds,
        )

    def step(self, now: float) -> None:
        info = self.status.ask()
        if info is None:
            self.statename = None
            log.debug("watch_poll_failed", error=self.status.error)
            return
        self.statename = info.statename
        if self.status.new_process:
            log.info("comfyui_started", pid=info.pid)
        if info.statename in ("STARTING", "RUNNING"):
            self._probe(info)
        if info.statename == "RUNNING":
            self._running(now)
        else:
            self.running_since = None
        if info.statename == "FATAL":
            self._fatal(info, now)
        else:
            self.restart_at = None

    def _running(self, now: float) -> None:
        if self.running_since is None:
            self.running_since = now
        if self.give_ups and now - self.running_since >= self.backoff.cap:
            log.info("comfyui_backoff_reset", after_give_ups=self.give_ups)
            self.give_ups = 0

    def _probe(self, info: rpc.ProcessInfo) -> None:
        if info.pid == self.ready_pid or self._stop.is_set():
            return
        try:
            api.system_stats(self.port, timeout=PROBE_TIMEOUT)
        except api.ComfyUIUnavailable:
            return
        self.ready_pid = info.pid
        wall = time.time()
        log.info(
            "comfyui_ready",
            pid=info.pid,
            port=self.port,
            seconds_since_container_start=round(wall - self.container_started, 3),
            seconds_since_process_start=max(0, round(wall - info.start, 3)),
        )

    def _fatal(self, info: rpc.ProcessInfo, now: float) -> None:
        if self.restart_at is None:
            delay = self.backoff.delay(self.give_ups)
            self.give_ups += 1
            self.restart_at = now + delay
            log.error(
                "comfyui_gave_up",
                reason=info.spawnerr or info.description or "exited too quickly",
                give_ups=self.give_ups,
                restart_in_seconds=delay,
                hint="supervisorctl tail comfyui shows its last output",
            )
        elif now >= self.restart_at and not self._stop.is_set():
            self.restart_at = None
            log.warning("comfyui_restarting", give_ups=self.give_ups)
            self.statename = "STARTING"  # asked to start: on its way up, look again soon
            try:
                self.client.start_process(COMFYUI, wait=False)
            except rpc.RpcFault as exc:
                if exc.fault_name != "ALREADY_STARTED":
                    raise
