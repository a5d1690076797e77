"""The sidecar's HTTP side: ``/metrics``, ``/healthz``, ``/readyz`` on a small threaded
stdlib server, one request per connection.

``/metrics`` uses prometheus_client's exposition with content negotiation: the Prometheus
text format, or OpenMetrics when the ``Accept`` header asks for it; gzip when accepted.
``/healthz`` and ``/readyz`` answer ``200 ok`` or ``503 <short reason>`` in plain text.

``Server.serve`` sleeps in a selector on the listening socket, a wake-up pipe
(``wakeup.WakePipe``) and the connections still waiting for their request
(``connections.Gate``: timeouts, the cap on requests served at once, TLS handshakes), with no
timeout while none waits: an idle sidecar never wakes for its HTTP server, and ``shutdown``
still ends it at once.  With a web config,
``access`` decides who is served: ``/metrics`` (and ``/``) need the password;
``/healthz`` and ``/readyz`` answer everyone, with their reason only to a user who gave it.
"""

from __future__ import annotations

import errno
import gzip
import io
import resource
import selectors
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from comfy_init import logs
from comfy_init.sidecar.access import Access
from comfy_init.sidecar.connections import Gate
from comfy_init.sidecar.web_config import WebConfig
from comfy_init.sidecar.web_reload import WebReload
from comfy_init.wakeup import WakePipe

log = logs.get_logger("metrics.endpoints")

Check = Callable[[], tuple[bool, str]]
TEXT = "text/plain; charset=utf-8"
ACCEPT_BATCH = 64  # connections taken from the backlog per wake-up


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 drops a burst of connects (1 s SYN retries)

    def __init__(
        self,
        addr: str,
        port: int,
        registry: CollectorRegistry,
        health: Check,
        ready: Check,
        *,
        read_timeout: float = 5.0,
        max_requests: int = 40,
        web: WebConfig | None = None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in addr else socket.AF_INET
        self.registry = registry
        self.health = health
        self.ready = ready
        self.read_timeout = read_timeout
        self.max_requests = max_requests
        self.web = web
        self.access = Access(web)
        self.reload = WebReload(web) if web is not None else None
        self.received: dict[int, bytes] = {}  # fd -> start of its request, read by the gate
        self.gate: Gate | None = None
        self._wake = WakePipe()  # before bind: a failed bind closes it
        self._served = threading.Event()  # set while serve() is not running
        self._served.set()
        super().__init__((addr, port), Handler)
        self.socket.setblocking(False)  # accept() never blocks the serving thread

    def serve(self) -> None:
        """Answer requests (one thread each) until ``shutdown()``."""
        self._served.clear()
        try:
            with selectors.DefaultSelector() as selector:
                self.gate = gate = self._gate(selector)
                selector.register(self.socket, selectors.EVENT_READ, "accept")
                selector.register(self._wake.fileno(), selectors.EVENT_READ, "stop")
                timeout = None
                try:
                    while True:
                        events = selector.select(timeout)
                        if any(key.data == "stop" for key, _ in events):
                            return
                        for key, _ in events:
                            if key.data == "accept":
                                self._accept(gate)
                            elif (entry := gate.waiting.get(key.fd)) is key.data:
                                gate.ready(entry)  # still waiting: not closed meanwhile
                        timeout = gate.expire()
                finally:
                    gate.close_all()
        finally:
            self._served.set()

    def _gate(self, selector: selectors.BaseSelector) -> Gate:
        tls = self.web.tls if self.web is not None else None
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return Gate(
            selector,
            self._dispatch,
            timeout=self.read_timeout,
            max_requests=self.max_requests,
            max_pending=max(64, min(1024, soft // 2)),
            tls=self.web.tls_context if self.web is not None else None,
            allowed_sans=tls.client_allowed_sans if tls is not None else (),
        )

    def _accept(self, gate: Gate) -> None:
        if self.reload is not None and (new := self.reload.check()) is not None:
            self._use(new, gate)
        for _ in range(ACCEPT_BATCH):
            try:
                request, client = self.socket.accept()
            except OSError as exc:  # EAGAIN: the backlog is empty
                if exc.errno in (errno.EMFILE, errno.ENFILE) and gate.drop_oldest():
                    continue
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    time.sleep(0.05)  # every descriptor is serving a request: let one end
                return
            gate.add(request, client)

    def _use(self, web: WebConfig, gate: Gate) -> None:
        """Serve from now on with a web config read again."""
        self.web = web
        self.access = Access(web)
        gate.tls = web.tls_context
        gate.allowed_sans = web.tls.client_allowed_sans if web.tls is not None else ()

    def _dispatch(self, request: socket.socket, client: Any, received: bytes) -> None:
        self.received[request.fileno()] = received
        self.process_request(request, client)

    def shutdown_request(self, request: Any) -> None:
        """The request thread is done with its connection."""
        self.received.pop(request.fileno(), None)
        super().shutdown_request(request)
        if self.gate is not None:
            self.gate.finished()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is not worth a traceback."""
        log.debug("request_failed", client=str(client_address), exc_info=True)

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

    def handle(self) -> None:
        """One request, its head already read by the gate; the connection closes after."""
        self.close_connection = True
        self.connection.settimeout(self.server.read_timeout)  # each write of the answer
        self.rfile.close()
        self.rfile = io.BytesIO(self.server.received.pop(self.connection.fileno(), b""))
        self.handle_one_request()

    def do_GET(self) -> None:
        access = self.server.access
        if not access.allow_now():
            self._send(429, b"too many requests\n", TEXT)
            return
        path = urlsplit(self.path).path
        authorized = access.authorized(self.headers.get("Authorization"))
        if path in ("/healthz", "/readyz"):
            check = self.server.health if path == "/healthz" else self.server.ready
            try:
                ok, reason = check()
            except Exception as exc:  # a broken check is an unhealthy answer
                ok, reason = False, f"check failed: {exc!r}"
            if not authorized:  # the status is the answer; the reason is for the user
                reason = "ok" if ok else "unavailable"
            self._send(200 if ok else 503, (reason + "\n").encode(), TEXT)
        elif not authorized:
            self._send(401, b"unauthorized\n", TEXT, {"WWW-Authenticate": 'Basic realm="metrics"'})
        elif path == "/metrics":
            self._metrics()
        elif path == "/":
            self._send(200, b"comfy-init metrics sidecar: /metrics /healthz /readyz\n", TEXT)
        else:
            self._send(404, b"not found\n", TEXT)

    def _metrics(self) -> None:
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception as exc:  # collectors never raise; if one does, say so
            log.error("scrape_failed", error=repr(exc))
            self._send(500, f"scrape failed: {exc!r}\n".encode(), TEXT)
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
        self.send_header("Connection", "close")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        for key, value in self.server.access.headers.items():  # the web config's headers
            self.send_header(key, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Requests are not logged: Prometheus scrapes every few seconds."""
