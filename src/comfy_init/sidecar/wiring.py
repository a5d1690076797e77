"""The sidecar assembled: sources, background loops, inotify, download return, HTTP server.

Every root it reads is injected through ``Settings`` (cache, models, report, supervisord
socket, ComfyUI port) or a keyword (``/proc``), so tests run it against temp trees.

ComfyUI's model opens (as ``opens`` attributes them) are also recorded in this pod's usage
journal on the volume (``usage/recorder.py``), the input of ``@auto``.

Threads: ``probe`` (ComfyUI + supervisord + watchdog, every ``WATCHDOG_INTERVAL``),
``scan`` (report → open counter every second while a warmup runs, else with the cache walk
and residency every ``cache_scan_seconds``), ``writeback`` (returns downloads to the volume:
sleeps until a candidate is due or one is noticed), ``usage`` (appends the recorded opens
every few seconds, and at stop), ``inotify`` (``tree_inotify``) and the
HTTP server (asleep until a request).  None of them wakes on a short timer: each sleeps on an
event that ``stop()`` sets, so ``stop()`` ends them all at once (within ``STOP_SECONDS`` even
when one is stuck).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from comfy_init import logs
from comfy_init.comfyui import api
from comfy_init.manifest.search_path import SearchPath
from comfy_init.settings import Settings
from comfy_init.sidecar import download_return, families, web_config
from comfy_init.sidecar.cache_source import CacheSource
from comfy_init.sidecar.collector import SidecarCollector, Source
from comfy_init.sidecar.endpoints import Server
from comfy_init.sidecar.hang_watchdog import Policy
from comfy_init.sidecar.opens import OpenCounter
from comfy_init.sidecar.prober import Prober
from comfy_init.sidecar.readahead_source import ReadaheadSource
from comfy_init.sidecar.tree_inotify import TreeEvent, TreeInotify
from comfy_init.sidecar.warmup_source import WarmupSource
from comfy_init.supervisord.comfyui_process import COMFYUI, ProgramStatus
from comfy_init.supervisord.rpc import Client
from comfy_init.usage import journal
from comfy_init.usage.recorder import Recorder
from comfy_init.warmup.report import Report, read_report

log = logs.get_logger("metrics.sidecar")

READY_STATES = ("RUNNING", "STARTING")
# supervisord gives the sidecar 2 s between SIGTERM and SIGKILL.
STOP_SECONDS = 1.5
REPORT_SECONDS = 1.0  # the report is read this often while a warmup runs
RETURN_IDLE_SECONDS = 300.0  # longest write-back sleep (a safety net: notices wake it)
RETURN_MIN_SECONDS = 0.05  # shortest, so a candidate left due cannot spin the loop
RETURN_FAILED_SECONDS = 1.0  # after a round that raised


class Sidecar:
    def __init__(
        self,
        settings: Settings,
        *,
        registry: CollectorRegistry | None = None,
        proc_root: Path = Path("/proc"),
        cache_scan_seconds: float = 15.0,
        settle_seconds: float = 5.0,
        program: str = COMFYUI,
        pod: str | None = None,
    ) -> None:
        """``pod`` names this pod's usage journal; None: ``journal.pod_name`` of the
        environment (RUNPOD_POD_ID, HOSTNAME, the host name)."""
        self.settings = settings
        self.program = program
        self.cache_scan_seconds = cache_scan_seconds
        self.registry = registry if registry is not None else CollectorRegistry()
        self.stop_event = threading.Event()
        self.counter = OpenCounter(read_report=self._read_report)
        self.warmup = WarmupSource(settings.report_path)
        self.readahead = ReadaheadSource(settings.readahead_report_path)
        self.cache = CacheSource(settings.cache_path, self.counter.expect_own_open)
        self.prober = Prober(
            Client(settings.supervisord_socket, timeout=5.0),
            settings.comfyui_port,
            settings.watchdog_interval,
            Policy.of(settings),
            program=program,
            stop_timeout=settings.comfyui_stop_seconds + 15.0,
        )
        self.health_status = ProgramStatus(
            Client(settings.supervisord_socket, timeout=2.0), program
        )
        # ComfyUI's search list, read once as ComfyUI reads it once: where downloads go
        # back to, and which folders' opens count as the volume's.
        volume = SearchPath.of(settings)
        self.download_return = download_return.DownloadReturn(
            settings.cache_path,
            volume,
            self._read_report,
            self.counter.expect_own_open,
            settle_seconds=settle_seconds,
            proc_root=proc_root,
        )
        self.recorder = Recorder(
            journal.path_for(settings.usage_path, pod or journal.pod_name(os.environ)),
            settings.warmup_auto_days,
        )
        self.inotify_trees = TreeInotify(
            {"cache": settings.cache_path, "volume": settings.models_path},
            self._on_event,
            [("volume", type_, folder) for type_, folder in volume.user_folders()],
        )
        self.registry.register(
            SidecarCollector(
                [
                    Source("warmup_report", lambda now: (self.warmup.collect(now), True)),
                    Source("readahead_report", self.readahead.collect),
                    Source("cache", self.cache.collect),
                    Source("supervisord", lambda _now: self.prober.supervisord_families()),
                    Source("comfyui", lambda _now: self.prober.comfyui_families()),
                    Source("inotify", self._opens_families),
                ],
                [self._sidecar_families],
            )
        )
        self.server: Server | None = None
        self.threads: list[threading.Thread] = []

    # --- life cycle
    def start(self) -> None:
        """Read the web config (ConfigError if bad), bind the port (OSError if taken), then
        start every loop."""
        path = self.settings.metrics_web_config
        web = web_config.load(path) if path is not None else None
        self.server = Server(
            self.settings.metrics_addr, self.settings.metrics_port, self.registry,
            self.health, self.ready, read_timeout=self.settings.metrics_read_timeout,
            max_requests=self.settings.metrics_max_requests, web=web,
        )  # fmt: skip
        self.counter.baseline(self._read_report())
        self.prober.round()
        self.inotify_trees.start()
        loops = {"probe": self.prober.run, "scan": self._scan_loop, "usage": self.recorder.run}
        if self.settings.writeback:
            loops["writeback"] = self._download_return_loop
        for name, target in loops.items():
            thread = threading.Thread(
                target=target, args=(self.stop_event,), name=name, daemon=True
            )
            thread.start()
            self.threads.append(thread)
        serve = threading.Thread(target=self.server.serve, name="http", daemon=True)
        serve.start()
        self.threads.append(serve)
        log.info(
            "metrics_serving",
            addr=self.settings.metrics_addr,
            port=self.server.server_address[1],
            tls=web is not None and web.tls is not None,
            basic_auth=web is not None and bool(web.users),
            watchdog=self.settings.watchdog,
            writeback=self.settings.writeback,
        )

    def stop(self, budget: float = STOP_SECONDS) -> None:
        """Stop every loop; return within about ``budget`` seconds even if one is stuck
        (in a probe of a hung ComfyUI, say): the threads are daemons and die with us."""
        deadline = time.monotonic() + budget
        self.stop_event.set()
        self.download_return.wake.set()
        if self.server is not None and any(t.name == "http" for t in self.threads):
            self.server.shutdown()  # wakes the serving thread at once
        if self.server is not None:
            self.server.server_close()
        self.inotify_trees.stop(timeout=max(0.0, deadline - time.monotonic()))
        for thread in self.threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        stuck = [t.name for t in self.threads if t.is_alive()]
        if stuck:
            log.warning("metrics_stop_left_threads", threads=stuck)

    @property
    def port(self) -> int:
        if self.server is None:
            raise RuntimeError("the sidecar has not started")
        return int(self.server.server_address[1])

    # --- loops
    def _scan_loop(self, stop: threading.Event) -> None:
        next_scan = 0.0
        while not stop.is_set():
            report = self._quiet_report()
            self.counter.update_report(report)
            if time.monotonic() >= next_scan:
                self.cache.rescan(stop)
                next_scan = time.monotonic() + self.cache_scan_seconds
            warming = report is not None and report.state == "running"
            wait = next_scan - time.monotonic()
            stop.wait(max(0.0, min(wait, REPORT_SECONDS) if warming else wait))

    def _download_return_loop(self, stop: threading.Event) -> None:
        self.download_return.scan()
        while not stop.is_set():
            self.download_return.wake.clear()
            wait = RETURN_MIN_SECONDS
            try:
                self.download_return.run_due(stop)
            except Exception as exc:  # keep trying; each failure is logged
                log.error("writeback_round_failed", error=repr(exc))
                wait = RETURN_FAILED_SECONDS
            wait = max(wait, self.download_return.seconds_to_next(RETURN_IDLE_SECONDS))
            if not stop.is_set():
                self.download_return.wake.wait(wait)

    def _on_event(self, event: TreeEvent) -> None:
        if event.kind == "open":
            if self.counter.on_open(event.path, event.type, event.location) == "comfyui":
                self.recorder.record(event.type, event.name, event.path, event.location)
        elif event.kind == "create":
            self.counter.on_created(event.path)
        landed = event.kind in ("close_write", "moved_to", "found")
        if landed and event.location == "cache" and self.settings.writeback:
            self.download_return.notice(event.type, event.name, event.path)

    def _read_report(self) -> Report | None:
        return read_report(self.settings.report_path)

    def _quiet_report(self) -> Report | None:
        try:
            return self._read_report()
        except (OSError, ValueError, TypeError):
            return None

    # --- metrics that are not a source's
    def _opens_families(self, _now: float) -> tuple[list[Metric], bool]:
        opens, discounted = self.counter.snapshot()
        watches = self.inotify_trees.watch_counts()
        return [
            families.labelled("model_opens_total", sorted(opens.items())),
            families.labelled("model_opens_discounted_total", sorted(discounted.items())),
            families.labelled("inotify_watches", (((k,), v) for k, v in watches.items())),
            families.labelled("inotify_overflows_total", [((), self.inotify_trees.overflows)]),
        ], self.inotify_trees.alive()

    def _sidecar_families(self) -> list[Metric]:
        stats = self.download_return.stats
        return [
            families.single("comfyui_installed", 1.0 if self._comfyui_installed() else 0.0),
            families.labelled("comfyui_restarts_total", [((), self.prober.restarts_seen)]),
            families.labelled("watchdog_restarts_total", [((), self.prober.hang.restarts)]),
            families.single("watchdog_failed_probes", self.prober.hang.failed_probes),
            families.single("watchdog_enabled", 1.0 if self.settings.watchdog else 0.0),
            families.labelled("writeback_files_total", _by_type(stats.files)),
            families.labelled("writeback_bytes_total", _by_type(stats.bytes)),
            families.labelled("writeback_failures_total", _by_type(stats.failures)),
            families.single("writeback_pending_files", self.download_return.pending()),
            families.labelled("usage_records_written_total", [((), self.recorder.written)]),
            families.labelled("usage_journal_write_errors_total", [((), self.recorder.errors)]),
        ]

    # --- /healthz and /readyz
    def health(self) -> tuple[bool, str]:
        dead = [t.name for t in self.threads if not t.is_alive()]
        if not self.inotify_trees.alive():
            dead.append("inotify")
        if dead or not self.prober.healthy():
            return False, "sidecar loop stopped: " + (", ".join(dead) or "probe")
        info = self.health_status.ask()
        if info is None:
            return False, f"supervisord unavailable: {self.health_status.error}"
        if info.statename in READY_STATES:
            return True, f"ok: {self.program} {info.statename}"
        if info.statename == "STOPPED" and not self._comfyui_installed():
            # An empty volume: the pod is alive and waits for the user to install ComfyUI.
            return True, f"ok: waiting for ComfyUI at {self._main_py}"
        detail = f" ({info.spawnerr})" if info.spawnerr else ""
        return False, f"{self.program} is {info.statename}{detail}"

    def ready(self) -> tuple[bool, str]:
        if not self._comfyui_installed():
            return False, f"ComfyUI not installed: no {self._main_py}"
        try:
            api.system_stats(self.settings.comfyui_port, timeout=1.0)
        except api.ComfyUIUnavailable:
            return False, f"comfyui does not answer on port {self.settings.comfyui_port}"
        if self.settings.warmup_mode == "blocking" and self.warmup.state() == "running":
            return False, "warmup running"
        return True, "ok: comfyui answers"

    @property
    def _main_py(self) -> Path:
        return self.settings.comfyui_path / "main.py"

    def _comfyui_installed(self) -> bool:
        return self._main_py.is_file()


def _by_type(values: dict[str, int]) -> list[tuple[tuple[str], float]]:
    return [((t,), float(n)) for t, n in sorted(values.items())]
