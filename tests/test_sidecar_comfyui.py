"""ComfyUI metrics: recorded /system_stats and /queue answers, probes of the stand-in, and
the process as supervisord reports it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from comfy_init.sidecar import comfyui_source
from comfy_init.sidecar.collector import SidecarCollector, Source
from comfy_init.sidecar.comfyui_source import Probe
from comfy_init.supervisord.rpc import ProcessInfo
from harness.loopback import free_port
from harness.standin import StandinProcess

DATA = Path(__file__).resolve().parent / "data"


def recorded(name: str) -> Any:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def registry_of(found: list[Metric]) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(SidecarCollector([Source("comfyui", lambda _now: (found, True))]))
    return reg


def info(statename: str, start: int = 1000, now: int = 1600, pid: int = 42) -> ProcessInfo:
    return ProcessInfo(
        name="comfyui",
        group="comfyui",
        statename=statename,
        pid=pid,
        start=start,
        stop=0,
        now=now,
        exitstatus=0,
        spawnerr="",
        description="",
        stdout_logfile="",
        stderr_logfile="",
    )


def test_recorded_gpu_system_stats_give_ram_and_vram_per_device() -> None:
    stats = comfyui_source.parse_system_stats(recorded("comfyui_system_stats_h100.json"))
    probe = Probe(at=1.0, ok=True, seconds=0.004, stats=stats, queue=(0, 0))
    reg = registry_of(comfyui_source.probe_families(probe))
    device = {"device": "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync", "index": "0"}
    assert reg.get_sample_value("comfyinit_comfyui_vram_total_bytes", device) == 85029158912
    assert reg.get_sample_value("comfyinit_comfyui_vram_free_bytes", device) == 61236461568
    assert reg.get_sample_value("comfyinit_comfyui_ram_total_bytes") == 2164135702528
    assert reg.get_sample_value("comfyinit_comfyui_ram_free_bytes") == 1998471753728
    assert reg.get_sample_value("comfyinit_comfyui_http_up") == 1
    assert reg.get_sample_value("comfyinit_comfyui_http_probe_duration_seconds") == 0.004


def test_recorded_cpu_system_stats_have_a_device_without_index() -> None:
    stats = comfyui_source.parse_system_stats(recorded("comfyui_system_stats_cpu.json"))
    assert stats.devices == (comfyui_source.Device("cpu", "", 67317374976.0, 52150718464.0),)


def test_recorded_queue_counts_running_and_pending_jobs() -> None:
    assert comfyui_source.parse_queue(recorded("comfyui_queue_busy.json")) == (1, 2)
    assert comfyui_source.parse_queue(recorded("comfyui_queue_idle.json")) == (0, 0)
    probe = Probe(at=1.0, ok=True, seconds=0.01, queue=(1, 2))
    reg = registry_of(comfyui_source.probe_families(probe))
    assert reg.get_sample_value("comfyinit_comfyui_queue_jobs", {"state": "running"}) == 1
    assert reg.get_sample_value("comfyinit_comfyui_queue_jobs", {"state": "pending"}) == 2


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ([], "no 'system' object"),
        ({"devices": []}, "no 'system' object"),
        ({"system": {"ram_total": "lots", "ram_free": 1}}, "ram_total is 'lots'"),
        (
            {"system": {"ram_total": 1, "ram_free": 1}, "devices": [{"vram_total": None}]},
            "vram_total is None",
        ),
    ],
)
def test_malformed_system_stats_are_rejected(answer: Any, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        comfyui_source.parse_system_stats(answer)


@pytest.mark.parametrize(
    "answer", [[], {"queue_running": []}, {"queue_running": 1, "queue_pending": []}]
)
def test_malformed_queue_answers_are_rejected(answer: Any) -> None:
    with pytest.raises(ValueError, match="queue answer"):
        comfyui_source.parse_queue(answer)


def test_failed_probe_serves_http_down_and_no_stale_vram_or_queue() -> None:
    reg = registry_of(comfyui_source.probe_families(Probe(1.0, False, 5.0, "timed out")))
    assert reg.get_sample_value("comfyinit_comfyui_http_up") == 0
    assert reg.get_sample_value("comfyinit_comfyui_queue_jobs", {"state": "running"}) is None
    assert reg.get_sample_value("comfyinit_comfyui_ram_free_bytes") is None


def test_probe_of_the_standin_reads_its_stats_and_fake_queue(
    standin: Callable[..., StandinProcess],
) -> None:
    proc = standin(env={"STANDIN_VRAM_TOTAL": "1000", "STANDIN_VRAM_FREE": "250"})
    proc.wait_ready()
    assert proc.post("/standin/queue?running=1&pending=3")[0] == 200
    probe = comfyui_source.probe(proc.port, timeout=5.0)
    assert probe.ok, probe.error
    assert probe.queue == (1, 3)
    assert probe.stats is not None
    assert [(d.vram_total, d.vram_free) for d in probe.stats.devices] == [(1000.0, 250.0)]


def test_probe_of_a_hung_standin_fails_after_its_timeout(
    standin: Callable[..., StandinProcess],
) -> None:
    proc = standin()
    proc.wait_ready()
    assert proc.post("/standin/hang")[0] == 200
    probe = comfyui_source.probe(proc.port, timeout=0.5)
    assert not probe.ok
    assert probe.queue is None
    assert "timed out" in probe.error


def test_probe_of_a_closed_port_fails_without_raising() -> None:
    probe = comfyui_source.probe(free_port(), timeout=1.0)
    assert not probe.ok
    assert probe.error


def test_process_state_is_one_hot_and_uptime_counts_from_the_last_start() -> None:
    reg = registry_of(comfyui_source.process_families(info("RUNNING", start=1000, now=1600)))
    assert reg.get_sample_value("comfyinit_comfyui_process_state", {"state": "RUNNING"}) == 1
    assert reg.get_sample_value("comfyinit_comfyui_process_state", {"state": "FATAL"}) == 0
    assert reg.get_sample_value("comfyinit_comfyui_uptime_seconds") == 600


def test_fatal_process_has_no_uptime_whatever_its_exit_status() -> None:
    reg = registry_of(comfyui_source.process_families(info("FATAL", start=1000, now=1600)))
    assert reg.get_sample_value("comfyinit_comfyui_process_state", {"state": "FATAL"}) == 1
    assert reg.get_sample_value("comfyinit_comfyui_process_state", {"state": "RUNNING"}) == 0
    assert reg.get_sample_value("comfyinit_comfyui_uptime_seconds") == 0
