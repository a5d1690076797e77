"""The metrics port facing untrusted clients: read timeouts, the cap on requests served at
once, TLS and basic auth from a web config (the HTTP server alone, in this process)."""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry

from comfy_init.sidecar import web_config as wc
from comfy_init.sidecar.endpoints import Check, Server
from harness.certs import Pair, make_ca, make_cert, password_hash, web_config
from harness.polling import wait_for

pytestmark = pytest.mark.timeout(60)

Answer = tuple[int, dict[str, str], bytes]


def ok() -> tuple[bool, str]:
    return True, "ok: all fine"


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    started: list[tuple[Server, threading.Thread]] = []

    def start(
        *, health: Check = ok, ready: Check = ok, web: Path | None = None, **limits: float
    ) -> Server:
        server = Server(
            "127.0.0.1",
            0,
            CollectorRegistry(),
            health,
            ready,
            web=wc.load(web) if web is not None else None,
            **limits,  # type: ignore[arg-type]
        )
        thread = threading.Thread(target=server.serve, name="test-http", daemon=True)
        thread.start()
        started.append((server, thread))
        return server

    yield start
    for server, thread in started:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def port_of(server: Server) -> int:
    return int(server.server_address[1])


def get(
    server: Server,
    path: str,
    *,
    tls: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
) -> Answer:
    if tls is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection(
            "127.0.0.1", port_of(server), timeout=10
        )
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port_of(server), timeout=10, context=tls)
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed ``sock`` (EOF or reset), without blocking."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


# --- timeouts and the cap


def test_idle_connections_and_half_requests_take_no_thread_and_are_dropped_after_the_timeout(
    serve: Callable[..., Server],
) -> None:
    server = serve(read_timeout=3.0)
    idle = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(150)]
    half = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(150)]
    try:
        for sock in half:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: pod\r\n")
        assert server.gate is not None
        gate = server.gate
        threads = threading.active_count()
        wait_for(lambda: len(gate.waiting) == 300, 10, "300 connections waiting")
        assert get(server, "/healthz")[::2] == (200, b"ok: all fine\n")  # scrapes still answer
        # the waiting ones hold no thread (the scrape's own may take a moment to end)
        wait_for(lambda: threading.active_count() == threads, 2, "the scrape's thread to end")
        assert len(gate.waiting) == 300  # and were not dropped to let the scrape in
        wait_for(lambda: all(map(closed_by_server, idle + half)), 20, "every one dropped")
        assert gate.waiting == {}
        assert gate.turned_away == {"timed_out": 300}
        assert get(server, "/healthz")[0] == 200
    finally:
        for sock in idle + half:
            sock.close()


def test_a_client_trickling_its_request_head_is_dropped_at_the_timeout_of_its_accept(
    serve: Callable[..., Server],
) -> None:
    server = serve(read_timeout=1.0)
    sock = socket.create_connection(("127.0.0.1", port_of(server)))
    try:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Pad: ")
        end = time.monotonic() + 30
        cut = False
        while time.monotonic() < end and not cut:
            try:
                sock.sendall(b"a")  # never the blank line that ends the head
            except OSError:
                cut = True
            cut = cut or closed_by_server(sock)
            sock.setblocking(True)
            time.sleep(0.1)
        assert cut, "a trickling client kept its connection for 30 s"
    finally:
        sock.close()


def test_beyond_max_requests_the_port_answers_503_at_once_then_serves_again(
    serve: Callable[..., Server],
) -> None:
    release = threading.Event()

    def slow() -> tuple[bool, str]:
        release.wait(30)
        return True, "ok: slow"

    server = serve(health=slow, max_requests=2)
    answers: list[Answer] = []
    held = [
        threading.Thread(target=lambda: answers.append(get(server, "/healthz"))) for _ in range(2)
    ]
    for thread in held:
        thread.start()
    try:
        assert server.gate is not None
        gate = server.gate
        wait_for(lambda: gate.serving == 2, 10, "two requests in flight")
        status, headers, body = get(server, "/readyz")
        assert (status, body) == (503, b"too many requests at once, try again\n")
        assert headers["Connection"] == "close"
        assert gate.turned_away == {"busy": 1}
    finally:
        release.set()
        for thread in held:
            thread.join(timeout=10)
    assert [a[::2] for a in answers] == [(200, b"ok: slow\n")] * 2
    wait_for(lambda: gate.serving == 0, 10, "the slots to be free")
    assert get(server, "/readyz")[::2] == (200, b"ok: all fine\n")


def test_a_request_head_over_16_kib_gets_431(serve: Callable[..., Server]) -> None:
    server = serve()
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 200_000 + b"\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 431 ")


# --- TLS and basic auth


@pytest.fixture
def server_pair(tmp_path: Path) -> Pair:
    return make_cert(tmp_path, "server")


def client_tls(server: Pair, client: Pair | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=server.cert)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    return context


def test_with_tls_and_users_metrics_need_the_password_over_https_and_plain_http_is_refused(
    serve: Callable[..., Server], tmp_path: Path, server_pair: Pair
) -> None:
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {server_pair.cert}\n  key_file: {server_pair.key}\n"
        f"basic_auth_users:\n  prometheus: {password_hash('s3cret')}\n",
    )
    server = serve(web=path, ready=lambda: (False, "comfyui does not answer on port 8188"))
    tls = client_tls(server_pair)
    status, headers, body = get(server, "/metrics", tls=tls, auth=("prometheus", "s3cret"))
    assert status == 200
    assert b"# HELP" in body or body == b""  # an empty registry is a valid exposition
    for auth in (None, ("prometheus", "wrong"), ("nobody", "s3cret")):
        status, headers, body = get(server, "/metrics", tls=tls, auth=auth)
        assert (status, body) == (401, b"unauthorized\n"), auth
        assert headers["WWW-Authenticate"].startswith("Basic ")
    assert get(server, "/", tls=tls)[0] == 401
    # health and readiness answer everyone, their reason only to a user
    assert get(server, "/healthz", tls=tls)[::2] == (200, b"ok\n")
    assert get(server, "/healthz", tls=tls, auth=("prometheus", "s3cret"))[2] == b"ok: all fine\n"
    assert get(server, "/readyz", tls=tls)[::2] == (503, b"unavailable\n")
    assert get(server, "/readyz", tls=tls, auth=("prometheus", "s3cret"))[::2] == (
        503,
        b"comfyui does not answer on port 8188\n",
    )
    status, _, body = get(server, "/healthz")  # plain HTTP
    assert (status, body) == (400, b"Client sent an HTTP request to an HTTPS server.\n")
    assert server.gate is not None
    assert server.gate.turned_away == {"plain_http_to_tls": 1}


def test_client_certificates_are_verified_and_matched_against_allowed_sans(
    serve: Callable[..., Server], tmp_path: Path, server_pair: Pair
) -> None:
    ca = make_ca(tmp_path)
    allowed = make_cert(tmp_path, "prometheus", ca, san="DNS:prometheus.monitoring")
    other = make_cert(tmp_path, "other", ca, san="DNS:someone.else")
    stranger = make_cert(tmp_path, "stranger", san="DNS:prometheus.monitoring")  # not the CA's
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {server_pair.cert}\n  key_file: {server_pair.key}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca.cert}\n"
        "  client_allowed_sans: [prometheus.monitoring]\n",
    )
    server = serve(web=path)
    assert get(server, "/healthz", tls=client_tls(server_pair, allowed))[0] == 200
    for client in (None, other, stranger):
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
            get(server, "/healthz", tls=client_tls(server_pair, client))


def test_a_silent_tls_client_is_dropped_like_a_plain_one(
    serve: Callable[..., Server], tmp_path: Path, server_pair: Pair
) -> None:
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {server_pair.cert}\n  key_file: {server_pair.key}\n",
    )
    server = serve(web=path, read_timeout=1.0)
    raw = socket.create_connection(("127.0.0.1", port_of(server)))
    try:
        wait_for(lambda: closed_by_server(raw), 20, "the silent client to be dropped")
        assert get(server, "/healthz", tls=client_tls(server_pair))[0] == 200
    finally:
        raw.close()


def test_headers_of_the_web_config_are_on_every_answer_and_the_rate_limit_gives_429(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    path = web_config(
        tmp_path,
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
        "rate_limit:\n  interval: 1h\n  burst: 3\n",
    )
    server = serve(web=path)
    answers = [get(server, p) for p in ("/healthz", "/nope", "/metrics", "/healthz")]
    assert [a[0] for a in answers] == [200, 404, 200, 429]
    assert all(a[1]["X-Content-Type-Options"] == "nosniff" for a in answers)


# --- the image's HEALTHCHECK


def healthcheck_command() -> list[str]:
    dockerfile = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text()
    joined = dockerfile.replace("\\\n", " ")
    (line,) = [ln for ln in joined.splitlines() if ln.startswith("HEALTHCHECK")]
    command: list[str] = json.loads(line[line.index("CMD") + 3 :])
    return command


def run_healthcheck(server: Server) -> int:
    env = {**os.environ, "METRICS_PORT": str(port_of(server))}
    done = subprocess.run(
        healthcheck_command(), env=env, capture_output=True, timeout=30, check=False
    )
    return done.returncode


def test_the_images_healthcheck_passes_over_http_and_over_https_with_a_password_set(
    serve: Callable[..., Server], tmp_path: Path, server_pair: Pair
) -> None:
    assert run_healthcheck(serve()) == 0
    assert run_healthcheck(serve(health=lambda: (False, "comfyui is FATAL"))) != 0
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {server_pair.cert}\n  key_file: {server_pair.key}\n"
        f"basic_auth_users:\n  prometheus: {password_hash('s3cret')}\n",
    )
    assert run_healthcheck(serve(web=path)) == 0
    assert run_healthcheck(serve(web=path, health=lambda: (False, "comfyui is FATAL"))) != 0


def test_a_renewed_certificate_and_a_new_password_are_used_without_a_restart_a_bad_file_is_not(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    first, second = make_cert(old, "server"), make_cert(new, "server")
    live = Pair(tmp_path / "tls.crt", tmp_path / "tls.key")
    live.cert.write_bytes(first.cert.read_bytes())
    live.key.write_bytes(first.key.read_bytes())
    text = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n"
    path = web_config(tmp_path, text + f"  prometheus: {password_hash('one')}\n")
    server = serve(web=path)
    assert get(server, "/metrics", tls=client_tls(first), auth=("prometheus", "one"))[0] == 200

    live.cert.write_bytes(second.cert.read_bytes())  # renewed, as a Secret update does
    live.key.write_bytes(second.key.read_bytes())
    web_config(tmp_path, text + f"  prometheus: {password_hash('two')}\n")
    assert get(server, "/metrics", tls=client_tls(second), auth=("prometheus", "two"))[0] == 200
    assert get(server, "/metrics", tls=client_tls(second), auth=("prometheus", "one"))[0] == 401
    with pytest.raises(ssl.SSLCertVerificationError):  # the old certificate is gone
        get(server, "/metrics", tls=client_tls(first))

    web_config(tmp_path, text + "  prometheus: not-a-hash\n")  # a bad edit: the last good stays
    assert get(server, "/metrics", tls=client_tls(second), auth=("prometheus", "two"))[0] == 200
    assert server.reload is not None
    assert server.reload.config.users["prometheus"] != b"not-a-hash"
