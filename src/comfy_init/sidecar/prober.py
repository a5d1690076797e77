"""The background loop that looks at ComfyUI every ``WATCHDOG_INTERVAL`` seconds: its
process through supervisord's XML-RPC, its HTTP side through ``/system_stats`` and
``/queue``; it feeds the watchdog and restarts a hung ComfyUI.  Scrapes read the latest
results (``latest_info``, ``latest_probe``), so a hung ComfyUI never slows a scrape.

Restarts are counted from supervisord's pid of the process: each new pid after the first one
seen is one restart.  Two restarts between two looks count as one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from prometheus_client.core import Metric

from comfy_init import logs
from comfy_init.sidecar import comfyui_source
from comfy_init.sidecar.comfyui_source import Probe
from comfy_init.sidecar.hang_watchdog import HangWatch, Policy, restart
from comfy_init.supervisord.comfyui_process import COMFYUI, ProgramStatus
from comfy_init.supervisord.rpc import Client, ProcessInfo

log = logs.get_logger("metrics.prober")


class Prober:
    def __init__(
        self,
        client: Client,
        port: int,
        interval: float,
        policy: Policy,
        *,
        program: str = COMFYUI,
        stop_timeout: float = 30.0,
        probe: Callable[[], Probe] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.program = program
        self.status = ProgramStatus(client, program)
        self.interval = interval
        self.policy = policy
        self.stop_timeout = stop_timeout
        timeout = min(5.0, max(1.0, interval))
        self._probe = probe or (lambda: comfyui_source.probe(port, timeout=timeout))
        self.clock = clock
        self.hang = HangWatch()
        self.latest_probe: Probe | None = None
        self.last_round = 0.0  # monotonic time the last round ended

    # --- one round (the loop calls this; tests call it directly)
    def round(self) -> None:
        info = self._ask_supervisord()
        probe = self._probe()
        self.latest_probe = probe
        running = probe.queue[0] if probe.queue is not None else None
        now = self.clock()
        self.hang.observe(info, probe.ok, running, now)
        decision = self.hang.decide(self.policy, info, now)
        if decision.restart and info is not None:
            restart(self.client, self.program, info, self.hang, self.stop_timeout)
        elif not probe.ok and info is not None and info.statename == "RUNNING":
            log.info(
                "comfyui_probe_failed",
                error=probe.error,
                failed_probes=self.hang.failed_probes,
                watchdog=decision.reason,
            )
        self.last_round = time.monotonic()

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.round()
            except Exception as exc:  # the loop must outlive one bad round
                log.error("probe_round_failed", error=repr(exc))
            stop.wait(self.interval)

    def healthy(self) -> bool:
        """The loop is alive: its last round ended recently."""
        budget = 3 * self.interval + 2 * min(5.0, max(1.0, self.interval)) + self.stop_timeout
        return time.monotonic() - self.last_round < budget

    @property
    def latest_info(self) -> ProcessInfo | None:
        return self.status.info

    @property
    def restarts_seen(self) -> int:
        return self.status.restarts

    def _ask_supervisord(self) -> ProcessInfo | None:
        news = self.status.answered_before()
        info = self.status.ask()
        if info is None and news:
            log.warning("supervisord_unavailable", error=self.status.error)
        return info

    # --- sources for the collector
    def supervisord_families(self) -> tuple[list[Metric], bool]:
        info = self.latest_info
        return ([] if info is None else comfyui_source.process_families(info)), info is not None

    def comfyui_families(self) -> tuple[list[Metric], bool]:
        probe = self.latest_probe
        if probe is None:
            return [], False
        return comfyui_source.probe_families(probe), probe.ok
