"""Servers on 127.0.0.1: a free port to give one, and one HTTP request to it."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(port: int, path: str, *, method: str = "GET", timeout: float = 5.0) -> tuple[int, Any]:
    """(status, body) of one request to 127.0.0.1:port; an HTTP error status is returned, not
    raised.  The body is decoded JSON when it is a JSON object or array, None when empty,
    text otherwise (``/metrics``)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    if not body:
        return status, None
    if body.lstrip()[:1] in (b"{", b"["):
        return status, json.loads(body)
    return status, body.decode(errors="replace")
