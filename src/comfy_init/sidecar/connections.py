"""The metrics port's connections before their request is served: a silent or slow client
costs a socket in the serving thread's selector, never a thread.

Each accepted connection waits in the selector, read without blocking, until its request's
head (request line and headers) is whole; with TLS its handshake is done the same way first.
One whose head is not whole within the read timeout of its accept is closed; a head above
``MAX_HEAD_BYTES`` gets a 431.  A whole request is handed to a request thread while fewer
than ``max_requests`` are being served; beyond that it gets a 503 at once, as node_exporter
answers beyond ``--web.max-requests``.  Plain HTTP sent to a TLS port gets a
400 that says so (as Go's servers answer).  When more connections wait than ``max_pending``
(or the process runs out of file descriptors), the oldest waiting one is closed first: a
flood of idle connections cannot keep a scrape out.  What was turned away is counted
(``turned_away``) and logged as ``metrics_port_turned_away``, at most once a minute.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from comfy_init import logs
from comfy_init.sidecar import tls_context

log = logs.get_logger("metrics.connections")

TLS_HANDSHAKE = 0x16  # first byte of a TLS record carrying a ClientHello
READ_BYTES = 16384
LOG_EVERY_SECONDS = 60.0
MAX_HEAD_BYTES = 16384  # request line and headers (a scrape's are about 300 bytes)


def canned(status: str, text: str) -> bytes:
    body = text.encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


BUSY = canned("503 Service Unavailable", "too many requests at once, try again\n")
TOO_LARGE = canned("431 Request Header Fields Too Large", "request head too large\n")
PLAIN_TO_TLS = canned("400 Bad Request", "Client sent an HTTP request to an HTTPS server.\n")


@dataclass
class Waiting:
    sock: socket.socket
    client: Any
    deadline: float
    stage: str  # "sniff" (TLS: first byte not seen), "handshake", "request"
    received: bytes = b""  # the request so far


class Gate:
    def __init__(
        self,
        selector: selectors.BaseSelector,
        dispatch: Callable[[socket.socket, Any, bytes], None],
        *,
        timeout: float,
        max_requests: int,
        max_pending: int,
        tls: ssl.SSLContext | None = None,
        allowed_sans: tuple[str, ...] = (),
    ) -> None:
        self.selector = selector
        self.dispatch = dispatch
        self.timeout = timeout
        self.max_requests = max_requests
        self.max_pending = max_pending
        self.tls = tls
        self.allowed_sans = allowed_sans
        self.waiting: dict[int, Waiting] = {}  # by file descriptor, oldest first
        self.serving = 0
        self.turned_away: Counter[str] = Counter()  # why -> connections, since the start
        self._logged: Counter[str] = Counter()
        self._last_log = float("-inf")
        self._lock = threading.Lock()

    def add(self, sock: socket.socket, client: Any) -> None:
        while len(self.waiting) >= self.max_pending:
            self._note("oldest_dropped")
            self.drop_oldest()
        sock.setblocking(False)
        entry = Waiting(sock, client, time.monotonic() + self.timeout, "request")
        if self.tls is not None:
            entry.stage = "sniff"
        self.waiting[sock.fileno()] = entry
        self.selector.register(sock, selectors.EVENT_READ, entry)

    def drop_oldest(self) -> bool:
        """Close the connection that has waited longest; False if none waits."""
        if not self.waiting:
            return False
        self._close(next(iter(self.waiting.values())))
        return True

    def ready(self, entry: Waiting) -> None:
        """The selector says ``entry`` can make progress."""
        try:
            if entry.stage == "sniff":
                self._sniff(entry)
            if entry.stage == "handshake":
                self._handshake(entry)
            if entry.stage == "request":
                self._receive(entry)
        except (OSError, ValueError):  # reset, broken TLS, closed meanwhile: let it go
            if entry.stage == "handshake":
                self._note("tls_handshake_failed")
            self._close(entry)

    def expire(self) -> float | None:
        """Close the connections past their deadline; seconds until the next one, or None."""
        now = time.monotonic()
        for entry in list(self.waiting.values()):  # oldest first: deadlines in order
            if entry.deadline > now:
                return entry.deadline - now
            self._note("timed_out")
            self._close(entry)
        return None

    def finished(self) -> None:
        """A request thread is done with its connection."""
        with self._lock:
            self.serving -= 1

    def close_all(self) -> None:
        for entry in list(self.waiting.values()):
            self._close(entry)

    # --- stages
    def _sniff(self, entry: Waiting) -> None:
        first = entry.sock.recv(1, socket.MSG_PEEK)
        if not first:
            raise ConnectionResetError("closed before a byte")
        if first[0] != TLS_HANDSHAKE:
            if first.isalpha():  # a method: GET, POST, ...
                self._note("plain_http_to_tls")  # before the answer a client may act on
                self._answer(entry, PLAIN_TO_TLS)
            else:
                self._close(entry)
            return
        if self.tls is None:  # stage "sniff" is only set with TLS
            return
        # The wrapped socket keeps the descriptor: ``waiting`` keeps its place (oldest first).
        self.selector.unregister(entry.sock)
        entry.sock = self.tls.wrap_socket(
            entry.sock, server_side=True, do_handshake_on_connect=False
        )
        entry.stage = "handshake"
        self.selector.register(entry.sock, selectors.EVENT_READ, entry)

    def _handshake(self, entry: Waiting) -> None:
        if not isinstance(entry.sock, ssl.SSLSocket):  # wrapped in _sniff
            return
        try:
            entry.sock.do_handshake()
        except ssl.SSLWantReadError:
            self.selector.modify(entry.sock, selectors.EVENT_READ, entry)
            return
        except ssl.SSLWantWriteError:
            self.selector.modify(entry.sock, selectors.EVENT_WRITE, entry)
            return
        if self.allowed_sans and not tls_context.san_allowed(
            entry.sock.getpeercert(), self.allowed_sans
        ):
            self._note("client_san_refused")
            self._close(entry)
            return
        entry.stage = "request"
        self.selector.modify(entry.sock, selectors.EVENT_READ, entry)

    def _receive(self, entry: Waiting) -> None:
        """Read what has arrived (all of it: TLS may hold decrypted bytes the selector does
        not see); start the request once its head is whole."""
        while len(entry.received) <= MAX_HEAD_BYTES:
            try:
                data = entry.sock.recv(READ_BYTES)
            except (ssl.SSLWantReadError, BlockingIOError):  # nothing more for now
                break
            if not data:
                raise ConnectionResetError("closed before its request was whole")
            entry.received += data
            if b"\r\n\r\n" in entry.received or b"\n\n" in entry.received:
                self._start(entry)
                return
        if len(entry.received) > MAX_HEAD_BYTES:
            self._note("head_too_large")
            self._answer(entry, TOO_LARGE)

    def _start(self, entry: Waiting) -> None:
        with self._lock:
            busy = self.serving >= self.max_requests
            if not busy:
                self.serving += 1
        if busy:
            self._note("busy")
            self._answer(entry, BUSY)
            return
        self._forget(entry)
        entry.sock.setblocking(True)
        try:
            self.dispatch(entry.sock, entry.client, entry.received)
        except RuntimeError:  # no thread could be started: the request is not served
            self.finished()
            entry.sock.close()

    def _note(self, why: str) -> None:
        """Count a connection turned away; log the counts since the last line, at most once
        a minute (at the next one turned away: the serving thread keeps no timer)."""
        self.turned_away[why] += 1
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_SECONDS:
            since = self.turned_away - self._logged
            log.warning("metrics_port_turned_away", **dict(sorted(since.items())))
            self._logged = self.turned_away.copy()
            self._last_log = now

    # --- endings
    def _answer(self, entry: Waiting, response: bytes) -> None:
        """Read the rest of what the client sent so far, answer without blocking, close."""
        with contextlib.suppress(OSError):  # SSLWantReadError, BlockingIOError: all read
            for _ in range(4):
                if not entry.sock.recv(READ_BYTES):
                    break
        try:
            entry.sock.send(response)
            entry.sock.shutdown(socket.SHUT_WR)
        except (ssl.SSLWantWriteError, OSError):
            pass
        self._close(entry)

    def _forget(self, entry: Waiting) -> None:
        fd = entry.sock.fileno()
        if self.waiting.pop(fd, None) is not None:
            self.selector.unregister(entry.sock)

    def _close(self, entry: Waiting) -> None:
        if entry.sock.fileno() >= 0:
            self._forget(entry)
            entry.sock.close()
