"""A small client for the ComfyUI HTTP endpoints comfy-init relies on.

``GET /system_stats`` answers once custom nodes are imported, so an answer means ready.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class ComfyUIUnavailable(Exception):
    """ComfyUI did not answer (refused, timed out, or not JSON)."""


@dataclass(frozen=True)
class Answer:
    data: Any
    seconds: float


def get_json(port: int, path: str, *, host: str = "127.0.0.1", timeout: float = 2.0) -> Answer:
    """GET ``http://host:port/path`` and decode JSON; raise ComfyUIUnavailable otherwise."""
    url = f"http://{host}:{port}{path}"
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read()
        return Answer(json.loads(body), time.monotonic() - started)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise ComfyUIUnavailable(f"{url}: {exc}") from exc


def system_stats(port: int, *, host: str = "127.0.0.1", timeout: float = 2.0) -> Answer:
    return get_json(port, "/system_stats", host=host, timeout=timeout)


def queue(port: int, *, host: str = "127.0.0.1", timeout: float = 2.0) -> Answer:
    return get_json(port, "/queue", host=host, timeout=timeout)
