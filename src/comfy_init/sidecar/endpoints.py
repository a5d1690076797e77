"""The sidecar's HTTP side: ``/metrics``, ``/healthz``, ``/readyz`` on a small threaded
stdlib server.

``/metrics`` uses prometheus_client's exposition with content negotiation: the Prometheus
text format, or OpenMetrics when the ``Accept`` header asks for it; gzip when accepted.
``/healthz`` and ``/readyz`` answer ``200 ok`` or ``503 <short reason>`` in plain text.

``Server.serve`` sleeps on the listening socket and a wake-up pipe (``wakeup.WakePipe``), with
no timeout: an idle sidecar never wakes for its HTTP server (``serve_forever`` would wake every
``poll_interval`` to look for a shutdown request), and ``shutdown`` still ends it at once.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from comfy_init import logs
from comfy_init.wakeup import WakePipe

log = logs.get_logger("metrics.endpoints")

Check = Callable[[], tuple[bool, str]]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, addr: str, port: int, registry: CollectorRegistry, health: Check, ready: Check
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.registry = registry
        self.health = health
        self.ready = ready
        self._wake = WakePipe()  # before bind: a failed bind closes it
        self._served = threading.Event()  # set while serve() is not running
        self._served.set()
        super().__init__((addr, port), Handler)
        self.socket.setblocking(False)  # accept() never blocks the serving thread

    def serve(self) -> None:
        """Answer requests (one thread each) until ``shutdown()``."""
        self._served.clear()
        try:
            while True:
                self._wake.wait(None, self.socket.fileno())
                if self._wake.poked():
                    return
                self._accept()
        finally:
            self._served.set()

    def _accept(self) -> None:
        try:
            request, client = self.get_request()
        except OSError:  # nothing to accept after all, or the client already gave up
            return
        request.setblocking(True)
        self.process_request(request, client)

    def shutdown(self) -> None:
        """Make ``serve()`` return and wait until it has (at once if it is not running;
        a ``serve()`` started later returns at once too)."""
        if not self._wake.closed:  # else nothing serves any more
            self._wake.poke()
            self._served.wait()

    def server_close(self) -> None:
        super().server_close()
        if self._served.is_set():
            self._wake.close()


class Handler(BaseHTTPRequestHandler):
    server: Server
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/metrics":
            self._metrics()
        elif path in ("/healthz", "/readyz"):
            check = self.server.health if path == "/healthz" else self.server.ready
            try:
                ok, reason = check()
            except Exception as exc:  # a broken check is an unhealthy answer
                ok, reason = False, f"check failed: {exc!r}"
            self._send(200 if ok else 503, (reason + "\n").encode(), "text/plain; charset=utf-8")
        elif path == "/":
            body = b"comfy-init metrics sidecar: /metrics /healthz /readyz\n"
            self._send(200, body, "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception as exc:  # collectors never raise; if one does, say so
            log.error("scrape_failed", error=repr(exc))
            self._send(500, f"scrape failed: {exc!r}\n".encode(), "text/plain; charset=utf-8")
            return
        extra = {}
        if "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            extra["Content-Encoding"] = "gzip"
        self._send(200, body, content_type, extra)

    def _send(
        self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: Prometheus scrapes every few seconds."""
