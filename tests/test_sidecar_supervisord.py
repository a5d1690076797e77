"""The sidecar against a real supervisord running the ComfyUI stand-in as ``comfyui``:
the watchdog restarts a hung stand-in, /healthz and /readyz follow the process, restarts
and process state are scraped."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from comfy_init import settings
from comfy_init.sidecar import catalog
from comfy_init.sidecar.hang_watchdog import Policy
from comfy_init.sidecar.prober import Prober
from comfy_init.sidecar.wiring import Sidecar
from comfy_init.supervisord import rpc
from comfy_init.warmup.report import FileRecord, Report, Totals, write_report
from harness.loopback import free_port, http
from harness.polling import wait_for
from harness.standin import read_records

pytestmark = [pytest.mark.process, pytest.mark.timeout(90)]

CONF = """\
[supervisord]
nodaemon=true
logfile=/dev/null
logfile_maxbytes=0
pidfile={run}/supervisord.pid
user=root

[unix_http_server]
file={run}/supervisord.sock
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:comfyui]
command={python} main.py --port {port}
directory={comfyui}
environment=STANDIN_RECORD="{record}"
startsecs=0
autorestart=true
stopsignal=INT
stopasgroup=true
killasgroup=true
stopwaitsecs=3
stdout_logfile={run}/comfyui.log
redirect_stderr=true
"""


@dataclass
class Pod:
    """supervisord running the stand-in as program ``comfyui``, and matching settings."""

    client: rpc.Client
    port: int
    record: Path
    settings: settings.Settings

    def info(self) -> rpc.ProcessInfo:
        return self.client.get_process_info("comfyui")

    def answers(self) -> bool:
        with contextlib.suppress(OSError):
            return http(self.port, "/system_stats", timeout=1.0)[0] == 200
        return False

    def post(self, path: str) -> int:
        return int(http(self.port, path, method="POST")[0])


@pytest.fixture
def pod(comfyui_dir: Path, tmp_path: Path) -> Iterator[Pod]:
    run = Path(tempfile.mkdtemp(prefix="ci-metrics-", dir="/tmp"))  # short: unix socket path
    port = free_port()
    record = tmp_path / "standin.jsonl"
    conf = run / "supervisord.conf"
    conf.write_text(
        CONF.format(run=run, python=sys.executable, port=port, comfyui=comfyui_dir, record=record),
        encoding="utf-8",
    )
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "supervisord"), "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    (tmp_path / "cache").mkdir()
    conf_env = {
        "COMFYUI_PATH": str(comfyui_dir),
        "CACHE_PATH": str(tmp_path / "cache"),
        "RUN_DIR": str(run),
        "COMFYUI_PORT": str(port),
        "METRICS_ADDR": "127.0.0.1",
        "METRICS_PORT": str(free_port()),
        "WATCHDOG_INTERVAL": "0.2",
        "WATCHDOG_FAILURES": "2",
        "WATCHDOG_GRACE": "0",
        "COMFYUI_STOP_SECONDS": "3",
    }
    the_pod = Pod(rpc.Client(run / "supervisord.sock", timeout=5), port, record,
                  settings.from_env(conf_env))  # fmt: skip
    try:
        wait_for(the_pod.answers, 30, "the stand-in to answer under supervisord")
        yield the_pod
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        for event in read_records(record):  # any stand-in that outlived supervisord
            if event.get("event") == "start":
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(event["pgid"], signal.SIGKILL)
        shutil.rmtree(run, ignore_errors=True)


def test_watchdog_restarts_a_hung_comfyui_through_supervisord(pod: Pod) -> None:
    prober = Prober(
        pod.client,
        pod.port,
        interval=0.2,
        policy=Policy(enabled=True, failures=2, grace=0, busy_limit=3600),
        stop_timeout=20,
    )
    prober.round()
    old_pid = pod.info().pid
    assert pod.post("/standin/hang") == 200
    deadline = time.monotonic() + 40
    while prober.hang.restarts == 0 and time.monotonic() < deadline:
        prober.round()
    assert prober.hang.restarts == 1
    wait_for(lambda: pod.info().statename == "RUNNING" and pod.answers(), 20, "a new ComfyUI")
    assert pod.info().pid not in (0, old_pid)
    signals = [e["signum"] for e in read_records(pod.record) if e["event"] == "signal"]
    assert signals[:1] == [signal.SIGINT]  # stopped the way ComfyUI wants to be stopped
    prober.round()
    assert prober.restarts_seen == 1
    assert prober.hang.failed_probes == 0


def test_watchdog_leaves_a_hung_comfyui_alone_while_a_job_runs(pod: Pod) -> None:
    prober = Prober(
        pod.client,
        pod.port,
        interval=0.2,
        policy=Policy(enabled=True, failures=2, grace=0, busy_limit=3600),
    )
    assert pod.post("/standin/queue?running=1") == 200
    prober.round()
    assert prober.hang.last_running_jobs == 1
    pid = pod.info().pid
    assert pod.post("/standin/hang") == 200
    for _ in range(4):
        prober.round()
    assert prober.hang.failed_probes >= 2
    assert prober.hang.restarts == 0
    assert pod.info().pid == pid


def scrape_value(port: int, line_start: str) -> str | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return line.split(" ")[-1]
    return None


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def sidecar(pod: Pod) -> Iterator[Sidecar]:
    car = Sidecar(replace(pod.settings, watchdog=False), registry=CollectorRegistry())
    car.start()
    try:
        yield car
    finally:
        car.stop()


def test_healthz_and_readyz_follow_comfyui_under_supervisord(pod: Pod, sidecar: Sidecar) -> None:
    assert get(sidecar.port, "/healthz") == (200, "ok: comfyui RUNNING\n")
    assert get(sidecar.port, "/readyz") == (200, "ok: comfyui answers\n")
    assert pod.post("/standin/hang") == 200
    status, body = get(sidecar.port, "/readyz")
    assert (status, body) == (503, f"comfyui does not answer on port {pod.port}\n")
    assert get(sidecar.port, "/healthz")[0] == 200  # the process still runs
    assert pod.client.stop_process("comfyui", timeout=20)
    assert get(sidecar.port, "/healthz") == (503, "comfyui is STOPPED\n")


def test_scrape_shows_process_state_and_counts_a_crash_restart(pod: Pod, sidecar: Sidecar) -> None:
    port = sidecar.port
    assert scrape_value(port, 'comfyinit_comfyui_process_state{state="RUNNING"}') == "1.0"
    assert scrape_value(port, 'comfyinit_source_up{source="supervisord"}') == "1.0"
    assert scrape_value(port, "comfyinit_comfyui_http_up") == "1.0"
    assert scrape_value(port, "comfyinit_comfyui_restarts_total") == "0.0"
    old = pod.info()
    os.kill(old.pid, signal.SIGKILL)
    wait_for(lambda: pod.info().pid not in (0, old.pid), 20, "supervisord to restart ComfyUI")
    wait_for(
        lambda: scrape_value(port, "comfyinit_comfyui_restarts_total") == "1.0",
        20,
        "the restart to be counted",
    )
    assert scrape_value(port, "comfyinit_watchdog_restarts_total") == "0.0"


def test_full_scrape_has_every_catalog_metric_and_promtool_finds_nothing_to_say(
    pod: Pod, tmp_path: Path
) -> None:
    conf = pod.settings
    (conf.cache_path / "checkpoints").mkdir(parents=True)
    (conf.cache_path / "checkpoints" / "a.safetensors").write_bytes(b"a" * 4096)
    files = [
        FileRecord("checkpoints", "a.safetensors", "/v/a", "/c/a", 4096, "copied", 4096, 0.5),
        FileRecord("loras", "b.safetensors", "/v/b", "/c/b", 10, "skipped_space"),
    ]
    write_report(
        conf.report_path,
        Report("done", 1, 100.0, "conf", "/v", "/c", 101.0, files, Totals.of(files, 1.0)),
    )
    car = Sidecar(replace(conf, watchdog=False), registry=CollectorRegistry())
    car.start()
    try:
        assert pod.post("/standin/queue?running=1&pending=2") == 200
        car.prober.round()
        with urllib.request.urlopen(f"http://127.0.0.1:{car.port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        car.stop()
    scraped = {family.name for family in text_string_to_metric_families(text)}
    assert scraped == {m.family_name for m in catalog.METRICS}
    up = {
        s.labels["source"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "comfyinit_source_up"
    }
    assert up == dict.fromkeys(catalog.SOURCES, 1.0)

    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run scripts/bootstrap (Debian package prometheus)"
    (tmp_path / "scrape.txt").write_text(text, encoding="utf-8")
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr.decode()
    assert checked.stdout.decode() + checked.stderr.decode() == ""
