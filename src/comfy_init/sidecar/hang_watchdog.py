"""The hang watchdog: restart a ComfyUI whose process runs but whose HTTP side is silent.

supervisord restarts ComfyUI only when it exits.  A ComfyUI that deadlocks keeps RUNNING
forever; the watchdog restarts it through supervisord when, all at once:

- supervisord says RUNNING, and ``grace`` seconds have passed since that process started
  (loading custom nodes can take minutes);
- ``failures`` consecutive HTTP probes of that process failed;
- the last good ``/queue`` did not show a running job — or it did, but the silence has
  lasted longer than ``busy_limit`` (a long job may starve the HTTP side for a while, not
  for ever).

Pure core: ``HangWatch.observe`` (feed each probe) and ``HangWatch.decide``; the restart
itself (``restart``) is a supervisord stop + start.
"""

from __future__ import annotations

from dataclasses import dataclass

from comfy_init import logs
from comfy_init.settings import Settings
from comfy_init.supervisord.rpc import Client, ProcessInfo

log = logs.get_logger("metrics.watchdog")


@dataclass(frozen=True)
class Policy:
    enabled: bool
    failures: int
    grace: float
    busy_limit: float

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            enabled=settings.watchdog,
            failures=settings.watchdog_failures,
            grace=settings.watchdog_grace,
            busy_limit=settings.watchdog_busy_limit,
        )


@dataclass(frozen=True)
class Decision:
    restart: bool
    reason: str  # why (not): disabled, not_running, grace, answering, busy, hung


class HangWatch:
    """What the watchdog knows about the current ComfyUI process."""

    def __init__(self) -> None:
        self.process: tuple[int, int] = (0, 0)  # (pid, start) of the process being judged
        self.failed_probes = 0
        self.last_ok_at: float | None = None  # unix time of the last answered probe
        self.last_running_jobs = 0  # running jobs in the last good /queue
        self.restarts = 0

    def observe(
        self, info: ProcessInfo | None, ok: bool, running_jobs: int | None, now: float
    ) -> None:
        """Record one probe of ComfyUI's HTTP side, made at unix time ``now``."""
        if info is None or info.statename != "RUNNING":
            self.failed_probes = 0
            return
        if (info.pid, info.start) != self.process:  # a new process: forget the old one
            self.process = (info.pid, info.start)
            self.failed_probes = 0
            self.last_ok_at = None
            self.last_running_jobs = 0
        if ok:
            self.failed_probes = 0
            self.last_ok_at = now
            if running_jobs is not None:
                self.last_running_jobs = running_jobs
        else:
            self.failed_probes += 1

    def decide(self, policy: Policy, info: ProcessInfo | None, now: float) -> Decision:
        if not policy.enabled:
            return Decision(False, "disabled")
        if info is None or info.statename != "RUNNING":
            return Decision(False, "not_running")
        if now - info.start < policy.grace:
            return Decision(False, "grace")
        if self.failed_probes < policy.failures:
            return Decision(False, "answering")
        silent_since = self.last_ok_at if self.last_ok_at is not None else float(info.start)
        if self.last_running_jobs > 0 and now - silent_since < policy.busy_limit:
            return Decision(False, "busy")
        return Decision(True, "hung")

    def restarted(self) -> None:
        self.restarts += 1
        self.failed_probes = 0
        self.last_ok_at = None
        self.last_running_jobs = 0


def restart(
    client: Client, program: str, info: ProcessInfo, hang: HangWatch, stop_timeout: float
) -> bool:
    """Stop and start ``program`` through supervisord; True if the start was accepted."""
    silent = hang.failed_probes
    log.warning(
        "watchdog_restart",
        program=program,
        pid=info.pid,
        failed_probes=silent,
        last_running_jobs=hang.last_running_jobs,
    )
    hang.restarted()
    try:
        client.stop_process(program, wait=True, timeout=stop_timeout)
    except Exception as exc:  # NOT_RUNNING etc.: start it anyway
        log.warning("watchdog_stop_failed", program=program, error=str(exc))
    try:
        client.start_process(program, wait=False)
    except Exception as exc:  # logged; the next probe round tries again
        log.error("watchdog_start_failed", program=program, error=str(exc))
        return False
    return True
