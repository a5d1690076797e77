"""The metrics port of a whole ``comfy-init start`` run as PID 1, faced with clients that
hold connections, more requests than it serves at once, and bad web config files."""

from __future__ import annotations

import socket
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comfy_init.errors import EXIT_CONFIG
from harness import boots as h
from harness.certs import make_cert, password_hash, web_config
from harness.loopback import free_port
from harness.pid1 import Pid1

pytestmark = [pytest.mark.process, pytest.mark.root, pytest.mark.timeout(120)]


@pytest.fixture
def start(tmp_path: Path, comfyui_dir: Path) -> Iterator[Callable[..., Pid1]]:
    yield from h.runner(tmp_path, comfyui_dir)


def sidecar_env(**extra: str) -> dict[str, str]:
    return {
        "METRICS": "1",
        "METRICS_ADDR": "127.0.0.1",
        "METRICS_PORT": str(free_port()),
        "WATCHDOG": "0",
        "WRITEBACK": "0",
        **extra,
    }


def get(run: Pid1, path: str, timeout: float = 10) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{run.env['METRICS_PORT']}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def sidecar_threads(run: Pid1) -> int:
    """Threads of the namespace's ``comfy-init metrics`` process."""
    sidecar = h.wait_for(lambda: run.processes().get("sidecar"), 10, "the sidecar process")
    return int(sidecar.num_threads())


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def boot(start: Callable[..., Pid1], tmp_path: Path, **env: str) -> Pid1:
    (tmp_path / "warmup_models.conf").write_text("", encoding="utf-8")
    run = start(env=sidecar_env(**env))
    h.wait_for(lambda: _up(run), 60, "the sidecar to answer /healthz", step=0.1)
    return run


def _up(run: Pid1) -> bool:
    run._fail_if_exited("the sidecar answers")
    try:
        return get(run, "/healthz", timeout=2)[0] == 200
    except OSError:
        return False


def test_idle_and_half_sent_connections_cost_no_thread_and_are_dropped_while_scrapes_answer(
    start: Callable[..., Pid1], tmp_path: Path
) -> None:
    run = boot(start, tmp_path, METRICS_READ_TIMEOUT="3")
    threads = sidecar_threads(run)
    port = int(run.env["METRICS_PORT"])
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(400)]
    try:
        for sock in held[::2]:  # half of them send half a request
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: pod\r\n")
        status, body = get(run, "/metrics")
        assert status == 200
        assert b"comfyinit_build_info" in body
        assert sidecar_threads(run) <= threads + 1  # one request thread at most, not 400
        h.wait_for(lambda: all(map(closed_by_server, held)), 30, "all 400 dropped", step=0.2)
        assert get(run, "/metrics")[0] == 200
        # the first one turned away is logged at once (the next, at most a minute later)
        logged = run.wait_stdout(r'^.*"event": "metrics_port_turned_away".*$', 10).group(0)
        assert '"timed_out": 1' in logged
    finally:
        for sock in held:
            sock.close()


def test_more_concurrent_requests_than_max_requests_get_503(
    start: Callable[..., Pid1], tmp_path: Path
) -> None:
    run = boot(start, tmp_path, METRICS_MAX_REQUESTS="3")
    h.http(run, "POST", "/standin/hang")  # /readyz now waits 1 s for ComfyUI
    answers: list[tuple[int, bytes]] = []
    gate = threading.Barrier(8)

    def ask() -> None:
        gate.wait()
        answers.append(get(run, "/readyz"))

    askers = [threading.Thread(target=ask) for _ in range(8)]
    for thread in askers:
        thread.start()
    for thread in askers:
        thread.join(timeout=30)
    h.http(run, "POST", "/standin/unhang")
    assert sorted(answers) == sorted(
        [(503, b"comfyui does not answer on port " + run.env["COMFYUI_PORT"].encode() + b"\n")] * 3
        + [(503, b"too many requests at once, try again\n")] * 5
    )
    h.wait_for(lambda: get(run, "/readyz")[0] == 200, 30, "ready again")


# --- bad web config files: exit 3 before any warmup


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """kind -> (file, what the error must say)."""
    pair = make_cert(tmp_path, "server")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("no certificate here\n")
    files = {
        "missing": (tmp_path / "absent.yml", "cannot be read: No such file or directory"),
        "bad yaml": ("basic_auth_users: [\n", ":2: not valid YAML"),
        "unknown key": ("basic_auth:\n  a: b\n", ":1: basic_auth: unknown key"),
        "bad hash": ("basic_auth_users:\n  prom: letmein\n", ":2: basic_auth_users.prom: is not"),
        "bad certificate": (
            f"tls_server_config:\n  cert_file: {garbage}\n  key_file: {pair.key}\n",
            ":2: tls_server_config.cert_file: the certificate",
        ),
    }
    found = {}
    for kind, (content, says) in files.items():
        if isinstance(content, Path):
            found[kind] = (content, says)
        else:
            found[kind] = (web_config(tmp_path, content, kind.replace(" ", "-") + ".yml"), says)
    return found


def test_each_kind_of_bad_web_config_stops_the_start_with_exit_3_before_any_warmup(
    start: Callable[..., Pid1],
    tmp_path: Path,
    comfyui_dir: Path,
    make_safetensors: Callable[..., Path],
) -> None:
    make_safetensors(comfyui_dir / "models" / "checkpoints" / "m.safetensors", 64 * 1024)
    (tmp_path / "warmup_models.conf").write_text("checkpoints/m.safetensors\n", encoding="utf-8")
    for kind, (path, says) in bad_files(tmp_path).items():
        run = start(env=sidecar_env(METRICS_WEB_CONFIG=str(path)))
        assert run.wait_exit(60) == EXIT_CONFIG, kind
        (failed,) = run.find_events("failed")
        assert failed["error"].startswith(f"web config {path}"), (kind, failed["error"])
        assert says in failed["error"], (kind, failed["error"])
        assert not run.find_events("warmup_lock_acquired"), kind
        assert not (tmp_path / "cache" / "checkpoints" / "m.safetensors").exists(), kind


def test_a_good_web_config_is_checked_at_start_and_the_port_then_speaks_only_https(
    start: Callable[..., Pid1], tmp_path: Path
) -> None:
    pair = make_cert(tmp_path, "server")
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pair.cert}\n  key_file: {pair.key}\n"
        f"basic_auth_users:\n  prometheus: {password_hash('s3cret')}\n",
    )
    (tmp_path / "warmup_models.conf").write_text("", encoding="utf-8")
    run = start(env=sidecar_env(METRICS_WEB_CONFIG=str(path)))
    url = f"https://127.0.0.1:{run.env['METRICS_PORT']}"
    tls = ssl.create_default_context(cafile=pair.cert)

    def https(path: str, auth: bool) -> int:
        request = urllib.request.Request(url + path)
        if auth:
            request.add_header("Authorization", "Basic cHJvbWV0aGV1czpzM2NyZXQ=")
        try:
            with urllib.request.urlopen(request, timeout=5, context=tls) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    def up() -> bool:
        run._fail_if_exited("the sidecar answers over HTTPS")
        try:
            return https("/healthz", auth=False) == 200
        except OSError:
            return False

    h.wait_for(up, 60, "the sidecar to answer over HTTPS", step=0.1)
    assert https("/metrics", auth=True) == 200
    assert https("/metrics", auth=False) == 401
    assert get(run, "/healthz")[0] == 400  # plain HTTP is refused
    serving = run.wait_stdout(r'^.*"event": "metrics_serving".*$', 10).group(0)
    assert '"tls": true' in serving
    assert '"basic_auth": true' in serving
