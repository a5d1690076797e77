"""End to end: ``comfy-init start`` as PID 1 (warmup, supervisord, the ComfyUI stand-in and
the metrics sidecar) scraped by a real Prometheus server, whose HTTP API then holds the
expected series."""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from comfy_init.sidecar import catalog
from harness import boots as h
from harness.certs import make_cert, password_hash, web_config
from harness.loopback import free_port
from harness.pid1 import Pid1

pytestmark = [pytest.mark.process, pytest.mark.root, pytest.mark.timeout(120)]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: comfy-init
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


# The same job against a port with a web config: HTTPS, verified against the test's
# certificate, with a user and password.
SCRAPE_CONFIG_PROTECTED = (
    SCRAPE_CONFIG
    + """\
    scheme: https
    tls_config:
      ca_file: {ca_file}
    basic_auth:
      username: prometheus
      password: {password}
"""
)


class Prometheus:
    def __init__(self, workdir: Path, target_port: int, config_text: str = SCRAPE_CONFIG) -> None:
        self.port = free_port()
        config = workdir / "prometheus.yml"
        config.write_text(config_text.format(port=target_port), encoding="utf-8")
        self.log = workdir / "prometheus.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def api(self, path: str, **params: str) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return json.loads(resp.read())

    def ready(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()[-2000:]
        with contextlib.suppress(OSError):
            url = f"http://127.0.0.1:{self.port}/-/ready"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.status == 200
        return False

    def query(self, promql: str) -> dict[str, float]:
        """Instant query: {label set rendered as JSON: value}."""
        answer = self.api("/api/v1/query", query=promql)
        assert answer["status"] == "success", answer
        return {
            json.dumps(r["metric"], sort_keys=True): float(r["value"][1])
            for r in answer["data"]["result"]
        }

    def value(self, promql: str) -> float | None:
        found = self.query(promql)
        return next(iter(found.values())) if len(found) == 1 else None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def start(tmp_path: Path, comfyui_dir: Path) -> Iterator[Callable[..., Pid1]]:
    yield from h.runner(tmp_path, comfyui_dir)


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Prometheus]]:
    started: list[Prometheus] = []

    def start(target_port: int, config_text: str = SCRAPE_CONFIG) -> Prometheus:
        assert Path(PROMETHEUS).exists(), "prometheus is missing: run scripts/bootstrap"
        server = Prometheus(tmp_path, target_port, config_text)
        started.append(server)
        h.wait_for(server.ready, 30, "prometheus to be ready", step=0.1)
        return server

    yield start
    for server in started:
        server.close()


def test_prometheus_scrapes_the_sidecar_of_a_pid1_boot_and_holds_the_expected_series(
    start: Callable[..., Pid1],
    prometheus: Callable[..., Prometheus],
    comfyui_dir: Path,
    tmp_path: Path,
    make_safetensors: Callable[..., Path],
) -> None:
    models = comfyui_dir / "models"
    make_safetensors(models / "checkpoints" / "base.safetensors", 3 * 1024 * 1024)
    make_safetensors(models / "loras" / "detail.safetensors", 256 * 1024)
    make_safetensors(models / "checkpoints" / "volume_only.safetensors", 128 * 1024)
    (tmp_path / "warmup_models.conf").write_text(
        "checkpoints/base.safetensors\nloras/*.safetensors\n", encoding="utf-8"
    )
    metrics_port = free_port()
    run = start(
        env={
            "METRICS": "1",
            "METRICS_ADDR": "127.0.0.1",
            "METRICS_PORT": str(metrics_port),
            "WATCHDOG": "0",
        }
    )
    prom = prometheus(metrics_port)

    h.wait_for(
        lambda: prom.value('up{job="comfy-init"}') == 1.0 or run._fail_if_exited("scrape"),
        60,
        "Prometheus to scrape the sidecar",
        step=0.2,
    )
    h.wait_for(
        lambda: (
            prom.value('comfyinit_comfyui_process_state{state="RUNNING"}') == 1.0
            and prom.value("comfyinit_comfyui_http_up") == 1.0
        ),
        60,
        "ComfyUI RUNNING and answering, as scraped",
        step=0.2,
    )
    h.wait_for(
        lambda: len(prom.query("comfyinit_source_up == 1")) == len(catalog.SOURCES),
        30,
        "every source up",
        step=0.2,
    )
    assert prom.value('sum(comfyinit_warmup_files{outcome="copied"})') == 2.0
    assert prom.value('comfyinit_warmup_state{state="done"}') == 1.0
    assert prom.value('comfyinit_cache_files{type="checkpoints"}') == 1.0

    # ComfyUI loads the cached checkpoint, then a model only the volume has
    answer = h.http(run, "POST", "/standin/load?folder=checkpoints&filename=base.safetensors")
    assert answer["path"].startswith(run.env["CACHE_PATH"])
    h.http(run, "POST", "/standin/load?folder=checkpoints&filename=volume_only.safetensors")
    h.wait_for(
        lambda: (
            prom.value('comfyinit_model_opens_total{type="checkpoints",location="cache"}') == 1.0
            and prom.value('comfyinit_model_opens_total{type="checkpoints",location="volume"}')
            == 1.0
        ),
        30,
        "the two loads, as scraped",
        step=0.2,
    )
    names = set(prom.api("/api/v1/label/__name__/values")["data"])
    expected = {series for m in catalog.METRICS for series in catalog.series_names(m)}
    # per-type write-back counters appear once a download was copied back; none was here
    unset = {f"comfyinit_writeback_{n}_total" for n in ("files", "bytes", "failures")}
    assert expected - names == unset

    run.signal(signal.SIGTERM)
    assert run.wait_exit(15) == 0


def test_prometheus_scrapes_a_sidecar_with_tls_and_basic_auth_using_its_scrape_config(
    start: Callable[..., Pid1],
    prometheus: Callable[..., Prometheus],
    tmp_path: Path,
) -> None:
    pair = make_cert(tmp_path, "server")
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pair.cert}\n  key_file: {pair.key}\n"
        f"basic_auth_users:\n  prometheus: {password_hash('s3cret')}\n",
    )
    (tmp_path / "warmup_models.conf").write_text("", encoding="utf-8")
    metrics_port = free_port()
    run = start(
        env={
            "METRICS": "1",
            "METRICS_ADDR": "127.0.0.1",
            "METRICS_PORT": str(metrics_port),
            "METRICS_WEB_CONFIG": str(path),
            "WATCHDOG": "0",
        }
    )
    good = SCRAPE_CONFIG_PROTECTED.replace("{ca_file}", str(pair.cert))
    prom = prometheus(metrics_port, good.replace("{password}", "s3cret"))
    h.wait_for(
        lambda: prom.value('up{job="comfy-init"}') == 1.0 or run._fail_if_exited("scrape"),
        60,
        "Prometheus to scrape the protected sidecar",
        step=0.2,
    )
    assert prom.value("comfyinit_build_info") == 1.0
    run.signal(signal.SIGTERM)
    assert run.wait_exit(15) == 0


@pytest.mark.parametrize(
    "change",
    [("{password}", "wrong"), ("scheme: https", "scheme: http")],
    ids=["wrong password", "plain http"],
)
def test_prometheus_with_a_wrong_password_or_plain_http_gets_no_samples(
    start: Callable[..., Pid1],
    prometheus: Callable[..., Prometheus],
    tmp_path: Path,
    change: tuple[str, str],
) -> None:
    pair = make_cert(tmp_path, "server")
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pair.cert}\n  key_file: {pair.key}\n"
        f"basic_auth_users:\n  prometheus: {password_hash('s3cret')}\n",
    )
    (tmp_path / "warmup_models.conf").write_text("", encoding="utf-8")
    metrics_port = free_port()
    start(
        env={
            "METRICS": "1",
            "METRICS_ADDR": "127.0.0.1",
            "METRICS_PORT": str(metrics_port),
            "METRICS_WEB_CONFIG": str(path),
            "WATCHDOG": "0",
        }
    )
    config = SCRAPE_CONFIG_PROTECTED.replace("{ca_file}", str(pair.cert)).replace(*change)
    prom = prometheus(metrics_port, config.replace("{password}", "s3cret"))
    h.wait_for(
        lambda: prom.value('up{job="comfy-init"}') == 0.0,
        60,
        "Prometheus to record the failed scrape",
        step=0.2,
    )
    targets = prom.api("/api/v1/targets")["data"]["activeTargets"]
    (target,) = [t for t in targets if t["labels"]["job"] == "comfy-init"]
    expected = "401 Unauthorized" if change[0] == "{password}" else "400 Bad Request"
    assert expected in target["lastError"]
    assert prom.value("comfyinit_build_info") is None
