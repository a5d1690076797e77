"""The sidecar's HTTP endpoints and the ``comfy-init metrics`` process."""

from __future__ import annotations

import gzip
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry

from comfy_init import settings
from comfy_init.errors import EXIT_ENVIRONMENT
from comfy_init.sidecar.endpoints import Server
from comfy_init.sidecar.wiring import Sidecar
from comfy_init.supervisord import rpc
from comfy_init.warmup.report import Report, write_report
from harness.loopback import free_port
from harness.standin import StandinProcess

pytestmark = pytest.mark.timeout(60)


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "ComfyUI" / "models").mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").mkdir(exist_ok=True)
    return {
        "COMFYUI_PATH": str(tmp_path / "ComfyUI"),
        "CACHE_PATH": str(tmp_path / "cache"),
        "RUN_DIR": str(tmp_path / "run"),
        "METRICS_ADDR": "127.0.0.1",
        "METRICS_PORT": str(free_port()),
        "COMFYUI_PORT": str(free_port()),
        "WATCHDOG": "0",
        "WRITEBACK": "0",
        **extra,
    }


def request(
    port: int, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.fixture
def start_sidecar(tmp_path: Path) -> Iterator[Callable[..., Sidecar]]:
    started: list[Sidecar] = []

    def start(**extra: str) -> Sidecar:
        car = Sidecar(settings.from_env(env_for(tmp_path, **extra)), registry=CollectorRegistry())
        started.append(car)
        car.start()
        return car

    yield start
    for car in started:
        car.stop()


def test_metrics_speak_the_text_format_by_default(start_sidecar: Callable[..., Sidecar]) -> None:
    car = start_sidecar()
    status, headers, body = request(car.port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b'comfyinit_build_info{version="0.1.0"} 1.0' in body
    assert b"# EOF" not in body


def test_metrics_speak_openmetrics_when_the_scraper_asks(
    start_sidecar: Callable[..., Sidecar],
) -> None:
    car = start_sidecar()
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    status, headers, body = request(car.port, "/metrics", {"Accept": accept})
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")
    assert b"# TYPE comfyinit_model_opens counter" in body


def test_metrics_are_gzipped_when_accepted(start_sidecar: Callable[..., Sidecar]) -> None:
    car = start_sidecar()
    status, headers, body = request(car.port, "/metrics", {"Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["Content-Encoding"] == "gzip"
    assert b"comfyinit_source_up" in gzip.decompress(body)


def test_unknown_paths_are_404(start_sidecar: Callable[..., Sidecar]) -> None:
    car = start_sidecar()
    assert request(car.port, "/nope")[0] == 404
    assert request(car.port, "/")[0] == 200


def test_healthz_says_why_when_supervisord_is_not_there(
    start_sidecar: Callable[..., Sidecar],
) -> None:
    car = start_sidecar()
    status, _, body = request(car.port, "/healthz")
    assert status == 503
    assert body.startswith(b"supervisord unavailable: ")
    assert b"supervisord.sock" in body


def test_readyz_waits_for_comfyui_and_for_a_blocking_warmup(
    tmp_path: Path,
    start_sidecar: Callable[..., Sidecar],
    standin: Callable[..., StandinProcess],
) -> None:
    proc = standin()
    car = start_sidecar(COMFYUI_PORT=str(proc.port), WARMUP_MODE="blocking")
    assert request(car.port, "/readyz")[:3:2] == (
        503,
        f"comfyui does not answer on port {proc.port}\n".encode(),
    )
    proc.wait_ready()
    assert request(car.port, "/readyz")[0] == 200
    report = Report("running", 1, time.time(), "c", "/v", "/c")
    write_report(tmp_path / "run" / "warmup-report.json", report)
    assert request(car.port, "/readyz")[:3:2] == (503, b"warmup running\n")


def test_readyz_does_not_wait_for_a_background_warmup(
    tmp_path: Path,
    start_sidecar: Callable[..., Sidecar],
    standin: Callable[..., StandinProcess],
) -> None:
    proc = standin()
    proc.wait_ready()
    write_report(
        tmp_path / "run" / "warmup-report.json", Report("running", 1, time.time(), "c", "/v", "/c")
    )
    car = start_sidecar(COMFYUI_PORT=str(proc.port), WARMUP_MODE="background")
    assert request(car.port, "/readyz")[0] == 200


# --- the server's sleep: no timer, woken by a request or by shutdown()


def bare_server() -> Server:
    return Server("127.0.0.1", 0, CollectorRegistry(), lambda: (True, "ok"), lambda: (True, "ok"))


def test_the_server_answers_requests_in_a_row_and_shutdown_ends_its_sleep() -> None:
    server = bare_server()
    port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve, name="test-http", daemon=True)
    thread.start()
    try:
        for _ in range(3):
            assert request(port, "/healthz")[::2] == (200, b"ok\n")
    finally:
        server.shutdown()  # waits for serve() to return
        server.server_close()
    assert not thread.is_alive()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", port), timeout=2),
    ):
        pass


def test_a_shutdown_before_serve_starts_makes_serve_return_at_once() -> None:
    server = bare_server()
    server.shutdown()
    thread = threading.Thread(target=server.serve, name="test-http", daemon=True)
    thread.start()
    thread.join(timeout=10)
    alive = thread.is_alive()
    server.server_close()
    assert not alive


# --- the command


def run_metrics(env: dict[str, str], stderr: Path) -> subprocess.Popen[bytes]:
    with open(stderr, "wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "comfy_init", "metrics"],
            env={**os.environ, **env, "LOG_FORMAT": "json"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )


def wait_listening(port: int, proc: subprocess.Popen[bytes], seconds: float = 20) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        assert proc.poll() is None, f"comfy-init metrics exited with {proc.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"comfy-init metrics did not listen on {port}")


@pytest.mark.process
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_metrics_command_serves_until_a_stop_signal_then_exits_0(
    tmp_path: Path, signum: int
) -> None:
    env = env_for(tmp_path, WRITEBACK="1")
    log = tmp_path / "metrics.log"
    proc = run_metrics(env, log)
    try:
        port = int(env["METRICS_PORT"])
        wait_listening(port, proc)
        assert request(port, "/metrics")[0] == 200
        proc.send_signal(signum)
        assert proc.wait(timeout=15) == 0
        assert '"event": "metrics_stopped"' in log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.mark.process
def test_metrics_command_on_a_taken_port_exits_4_naming_the_variable(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = env_for(tmp_path, METRICS_PORT=str(taken.getsockname()[1]))
        log = tmp_path / "metrics.log"
        proc = run_metrics(env, log)
        try:
            assert proc.wait(timeout=20) == EXIT_ENVIRONMENT
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        err = log.read_text()
    assert "metrics sidecar cannot listen on 127.0.0.1:" in err
    assert "METRICS_PORT" in err


# --- an empty volume: alive, not ready, and saying so


class StoppedComfyUI:
    """Stands in for ``rpc.Client``: supervisord has ComfyUI STOPPED (not started yet)."""

    def get_process_info(self, name: str) -> rpc.ProcessInfo:
        return rpc.ProcessInfo.from_xmlrpc(
            {"name": name, "group": name, "statename": "STOPPED", "description": "Not started"}
        )


def test_without_comfyui_on_the_volume_readyz_says_so_and_metrics_show_it_missing(
    tmp_path: Path, start_sidecar: Callable[..., Sidecar]
) -> None:
    car = start_sidecar()
    main_py = tmp_path / "ComfyUI" / "main.py"
    assert request(car.port, "/readyz")[:3:2] == (
        503,
        f"ComfyUI not installed: no {main_py}\n".encode(),
    )
    assert b"\ncomfyinit_comfyui_installed 0.0\n" in request(car.port, "/metrics")[2]
    main_py.write_text("")
    assert b"\ncomfyinit_comfyui_installed 1.0\n" in request(car.port, "/metrics")[2]


def test_healthz_is_ok_while_a_stopped_comfyui_waits_for_its_install_and_not_after(
    tmp_path: Path, start_sidecar: Callable[..., Sidecar]
) -> None:
    car = start_sidecar()
    car.health_status.client = StoppedComfyUI()  # type: ignore[assignment]
    main_py = tmp_path / "ComfyUI" / "main.py"
    assert request(car.port, "/healthz")[:3:2] == (
        200,
        f"ok: waiting for ComfyUI at {main_py}\n".encode(),
    )
    main_py.write_text("")  # installed, yet nothing started it: that is not healthy
    status, _, body = request(car.port, "/healthz")
    assert (status, body) == (503, b"comfyui is STOPPED\n")
