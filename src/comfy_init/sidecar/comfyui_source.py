"""ComfyUI as the sidecar sees it: HTTP probes (``/system_stats``, ``/queue``) and the
process as supervisord reports it.

Pure core: ``parse_system_stats``, ``parse_queue`` (shapes of ComfyUI's ``server.py``) and
the ``*_families`` functions; the edge (``probe``) makes the HTTP calls.  Probes run in the
sidecar's background loop; scrapes only turn the latest results into metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import Metric

from comfy_init.comfyui import api
from comfy_init.sidecar import families
from comfy_init.supervisord.rpc import ProcessInfo

PROCESS_STATES: tuple[str, ...] = (
    "STOPPED",
    "STARTING",
    "RUNNING",
    "BACKOFF",
    "STOPPING",
    "EXITED",
    "FATAL",
    "UNKNOWN",
)


@dataclass(frozen=True)
class Device:
    name: str
    index: str
    vram_total: float
    vram_free: float


@dataclass(frozen=True)
class SystemStats:
    ram_total: float
    ram_free: float
    devices: tuple[Device, ...]


@dataclass(frozen=True)
class Probe:
    """One look at ComfyUI's HTTP side."""

    at: float  # unix time the probe started
    ok: bool  # /system_stats answered with the expected shape
    seconds: float  # time /system_stats took (or until it failed)
    error: str = ""
    stats: SystemStats | None = None
    queue: tuple[int, int] | None = None  # (running, pending); None if /queue failed


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} is {value!r}, not a number")
    return float(value)


def parse_system_stats(data: Any) -> SystemStats:
    """RAM and devices from a ``/system_stats`` answer; ValueError if the shape is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("system"), dict):
        raise ValueError("system_stats has no 'system' object")
    system = data["system"]
    devices = []
    for dev in data.get("devices") or []:
        if not isinstance(dev, dict):
            raise ValueError(f"system_stats device {dev!r} is not an object")
        index = dev.get("index")
        devices.append(
            Device(
                name=str(dev.get("name", "")),
                index="" if index is None else str(index),
                vram_total=_number(dev.get("vram_total"), "vram_total"),
                vram_free=_number(dev.get("vram_free"), "vram_free"),
            )
        )
    return SystemStats(
        ram_total=_number(system.get("ram_total"), "ram_total"),
        ram_free=_number(system.get("ram_free"), "ram_free"),
        devices=tuple(devices),
    )


def parse_queue(data: Any) -> tuple[int, int]:
    """(running, pending) job counts from a ``/queue`` answer; ValueError if malformed."""
    if not isinstance(data, dict):
        raise ValueError("queue answer is not an object")
    running, pending = data.get("queue_running"), data.get("queue_pending")
    if not isinstance(running, list) or not isinstance(pending, list):
        raise ValueError("queue answer lacks queue_running/queue_pending lists")
    return len(running), len(pending)


def probe(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> Probe:
    """Ask ComfyUI for ``/system_stats`` and then ``/queue``; never raises."""
    at = clock()
    started = time.monotonic()
    try:
        answer = api.system_stats(port, host=host, timeout=timeout)
        stats = parse_system_stats(answer.data)
    except (api.ComfyUIUnavailable, ValueError) as exc:
        return Probe(at, False, time.monotonic() - started, str(exc))
    queue: tuple[int, int] | None
    try:
        queue = parse_queue(api.queue(port, host=host, timeout=timeout).data)
    except (api.ComfyUIUnavailable, ValueError):
        queue = None
    return Probe(at, True, answer.seconds, "", stats, queue)


def probe_families(p: Probe) -> list[Metric]:
    """Metrics of the last probe: up and latency always, the rest when it answered."""
    out: list[Metric] = [
        families.single("comfyui_http_up", 1.0 if p.ok else 0.0),
        families.single("comfyui_http_probe_duration_seconds", p.seconds),
    ]
    if p.queue is not None:
        running, pending = p.queue
        out.append(
            families.labelled(
                "comfyui_queue_jobs", ((("running",), running), (("pending",), pending))
            )
        )
    if p.stats is not None:
        devs = p.stats.devices
        out += [
            families.labelled(
                "comfyui_vram_total_bytes", (((d.name, d.index), d.vram_total) for d in devs)
            ),
            families.labelled(
                "comfyui_vram_free_bytes", (((d.name, d.index), d.vram_free) for d in devs)
            ),
            families.single("comfyui_ram_total_bytes", p.stats.ram_total),
            families.single("comfyui_ram_free_bytes", p.stats.ram_free),
        ]
    return out


def process_families(info: ProcessInfo) -> list[Metric]:
    """ComfyUI's supervisord state and uptime (read ``statename``, never ``exitstatus``)."""
    state = info.statename if info.statename in PROCESS_STATES else "UNKNOWN"
    uptime = float(max(0, info.now - info.start)) if state == "RUNNING" and info.start else 0.0
    return [
        families.one_hot("comfyui_process_state", PROCESS_STATES, state),
        families.single("comfyui_uptime_seconds", uptime),
    ]
