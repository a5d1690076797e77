"""The init's own footprint while ComfyUI runs: memory and CPU of PID 1, supervisord and the
metrics sidecar, idle and while Prometheus scrapes once a second.

Memory: RSS and PSS (``/proc/<pid>/smaps_rollup`` through psutil; PSS shares the pages
two Python interpreters have in common between them) at the end of the window.  CPU: user +
system seconds the process used during the window, divided by the window's wall time: the
share of one core.  ComfyUI itself is not the init's cost and is left out.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import psutil

from harness.loopback import http
from harness.pid1 import Pid1

ROLES = ("pid1", "supervisord", "sidecar")


@dataclass(frozen=True)
class Usage:
    role: str
    rss: int  # bytes
    pss: int | None  # bytes; None where the kernel does not say
    cpu_percent: float  # % of one core over the window


@dataclass(frozen=True)
class Window:
    name: str  # "idle" or "scraped"
    seconds: float
    usage: tuple[Usage, ...]
    scrapes: int = 0
    scrape_p50_ms: float | None = None
    scrape_max_ms: float | None = None

    def of(self, *roles: str) -> tuple[int, float]:
        """(RSS bytes, CPU %) of ``roles`` together."""
        chosen = [u for u in self.usage if u.role in roles]
        return sum(u.rss for u in chosen), sum(u.cpu_percent for u in chosen)


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def _memory(proc: psutil.Process) -> tuple[int, int | None]:
    try:
        full = proc.memory_full_info()
        return int(full.rss), int(getattr(full, "pss", 0)) or None
    except psutil.AccessDenied:
        return int(proc.memory_info().rss), None


def measure(boot: Pid1, name: str, seconds: float, scrape_every: float | None = None) -> Window:
    """Watch the init's processes for ``seconds``; scrape ``/metrics`` every ``scrape_every``
    seconds meanwhile if given."""
    procs = boot.processes()
    missing = [r for r in ROLES if r not in procs]
    if missing:
        raise RuntimeError(f"footprint: no {', '.join(missing)} process in the namespace")
    chosen = {r: procs[r] for r in ROLES}
    before = {r: _cpu(p) for r, p in chosen.items()}
    started = time.perf_counter()
    latencies: list[float] = []
    next_scrape = started
    end = started + seconds
    while (now := time.perf_counter()) < end:
        if scrape_every is None:
            time.sleep(min(0.5, end - now))
            continue
        if now >= next_scrape:
            t0 = time.perf_counter()
            status, _ = http(int(boot.env["METRICS_PORT"]), "/metrics", timeout=5.0)
            if status != 200:
                raise RuntimeError(f"footprint: scrape of /metrics answered HTTP {status}")
            latencies.append(time.perf_counter() - t0)
            next_scrape += scrape_every
        time.sleep(max(0.0, min(next_scrape, end) - time.perf_counter()))
    wall = time.perf_counter() - started
    usage = []
    for role, proc in chosen.items():
        with contextlib.suppress(psutil.NoSuchProcess):
            rss, pss = _memory(proc)
            cpu = (_cpu(proc) - before[role]) / wall * 100
            usage.append(Usage(role, rss, pss, cpu))
    latencies.sort()
    return Window(
        name,
        wall,
        tuple(usage),
        scrapes=len(latencies),
        scrape_p50_ms=latencies[len(latencies) // 2] * 1000 if latencies else None,
        scrape_max_ms=latencies[-1] * 1000 if latencies else None,
    )
