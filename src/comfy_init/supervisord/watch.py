"""Watch ComfyUI through supervisord: readiness lines and the crash-loop policy.

Crash loops, in two layers:
1. supervisord retries an early crash (one within ``startsecs``) ``startretries`` times with
   a growing delay (1 s, 2 s, 3 s), then gives up: the program is FATAL.  A crash after
   ``startsecs`` is restarted at once; such a loop is no faster than one start per
   ``startsecs`` and each exit is in supervisord's log.
2. A FATAL ComfyUI would stay down for good, silently.  This watcher polls supervisord,
   logs ``comfyui_gave_up`` (an error, with supervisord's reason) and starts ComfyUI again
   after ``COMFYUI_RESTART_BACKOFF`` seconds, doubling at every give-up up to ten times
   that; the delay is forgotten once ComfyUI has stayed up for that longest delay.

Readiness: each time a new ComfyUI process appears, ``GET /system_stats`` is polled until it
answers, then ``comfyui_ready`` is logged with the seconds since the container started.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from comfy_init import logs
from comfy_init.comfyui import api
from comfy_init.supervisord import rpc

log = logs.get_logger("watch")

PROGRAM = "comfyui"
POLL_SECONDS = 1.0
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


class ComfyUIWatcher:
    """A thread that polls supervisord about ``comfyui`` every ``poll_seconds``."""

    def __init__(
        self,
        client: rpc.Client,
        *,
        port: int,
        container_started: float,
        backoff: Backoff,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.client = client
        self.port = port
        self.container_started = container_started
        self.backoff = backoff
        self.poll_seconds = poll_seconds
        self.give_ups = 0
        self.restart_at: float | None = None
        self.seen_pid = 0
        self.ready_pid = 0
        self.running_since: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="comfyui-watch", daemon=True)

    def start(self) -> ComfyUIWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (never restarts ComfyUI afterwards); does not wait for a probe."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.step(time.monotonic())
            except (rpc.SupervisordUnavailable, rpc.RpcFault) as exc:
                log.debug("watch_poll_failed", error=str(exc))

    def step(self, now: float) -> None:
        info = self.client.get_process_info(PROGRAM)
        if info.pid and info.pid != self.seen_pid:
            self.seen_pid = info.pid
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
            try:
                self.client.start_process(PROGRAM, wait=False)
            except rpc.RpcFault as exc:
                if exc.fault_name != "ALREADY_STARTED":
                    raise
