"""The metrics port's web config file (``METRICS_WEB_CONFIG``), in the format of Prometheus'
exporter-toolkit: the file node_exporter reads with ``--web.config.file`` works here as is.

Read before the port opens (and by ``comfy-init start`` before any warmup), then again when
it changes (``web_reload``).  As in the toolkit (``yaml.UnmarshalStrict``) an unknown or
repeated key is an error; every problem is reported at once, each as
``web config <file>:<line>: <key>: <why>``.  Relative file names are relative to the web
config's directory, as in the toolkit.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from yaml.nodes import Node, ScalarNode

from comfy_init.errors import ConfigError
from comfy_init.sidecar import tls_context
from comfy_init.sidecar.tls_context import TLSServerConfig
from comfy_init.sidecar.yaml_reader import NodeReader, shown

SECTIONS = ("tls_server_config", "http_server_config", "basic_auth_users", "rate_limit")
# Response headers the toolkit lets a web config set, and the values it allows (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
# What Go's bcrypt.Cost accepts: $2<minor>$<cost 4..31>$<22 salt + 31 hash characters>.
BCRYPT_HASH = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class RateLimit:
    interval_seconds: float  # one request per interval comes back into the bucket
    burst: int


@dataclass(frozen=True)
class WebConfig:
    path: Path
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    tls: TLSServerConfig | None = None
    tls_context: ssl.SSLContext | None = None  # built from ``tls``: the certificate loaded
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit: RateLimit | None = None
    http2: bool = True  # accepted for the format's sake: the sidecar speaks HTTP/1.1


def load(path: Path) -> WebConfig:
    """Read and check the file, load the certificate; ConfigError names file, line and key."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise ConfigError(
            f"web config {path}: cannot be read: {why} (METRICS_WEB_CONFIG names a missing or "
            "unreadable file: fix the path or the file)"
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"web config {at}: not valid YAML: {problem} (fix the file)") from None
    r = NodeReader(path, "web config")
    top = r.mapping(root, "", SECTIONS) if root is not None else {}
    tls = tls_context.parse(r, top["tls_server_config"][1]) if "tls_server_config" in top else None
    headers, http2 = _http_server(r, top.get("http_server_config"))
    users = _users(r, top.get("basic_auth_users"))
    rate_limit = _rate_limit(r, top.get("rate_limit"))
    if r.problems:
        raise ConfigError(r.problems)

    def where(key: str) -> str:
        line = r.lines.get(key)
        return f"{path}:{line}: {key}" if line else f"{path}: {key}"

    context = tls_context.build(tls, where) if tls is not None else None
    return WebConfig(path, users, tls, context, headers, rate_limit, http2)


def _users(r: NodeReader, entry: tuple[Node, Node] | None) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    if entry is None:
        return users
    for name, (_, vnode) in r.mapping(entry[1], "basic_auth_users", None).items():
        key = f"basic_auth_users.{name}"
        hashed = r.string(vnode, key)
        match = BCRYPT_HASH.fullmatch(hashed)
        if match is None or not 4 <= int(match.group(1)) <= 31:
            r.fail(
                vnode,
                key,
                "is not a bcrypt hash like $2y$10$<53 characters> (make one with "
                "`htpasswd -nBC 10 \"\" | tr -d ':\\n'`, as for node_exporter)",
            )
        else:
            users[name] = hashed.encode("ascii")
    return users


def _http_server(r: NodeReader, entry: tuple[Node, Node] | None) -> tuple[dict[str, str], bool]:
    """(extra response headers, http2) of ``http_server_config``."""
    if entry is None:
        return {}, True
    found = r.mapping(entry[1], "http_server_config", ("http2", "headers"))
    http2 = (
        r.boolean(found["http2"][1], "http_server_config.http2", True) if "http2" in found else True
    )
    headers: dict[str, str] = {}
    base = "http_server_config.headers"
    given = r.mapping(found["headers"][1], base, tuple(HEADERS)) if "headers" in found else {}
    for name, (_, vnode) in given.items():
        value = r.string(vnode, f"{base}.{name}")
        allowed = HEADERS[name]
        if allowed is not None and value and value not in allowed:
            r.fail(vnode, f"{base}.{name}", f"{value!r} is not one of {', '.join(allowed)}")
        elif value:  # blank: unset, as in the toolkit
            headers[name] = value
    return headers, http2


def _rate_limit(r: NodeReader, entry: tuple[Node, Node] | None) -> RateLimit | None:
    if entry is None:
        return None
    found = r.mapping(entry[1], "rate_limit", ("interval", "burst"))
    interval: float | None = 0.0
    if "interval" in found:
        node = found["interval"][1]
        interval = parse_duration(node.value) if isinstance(node, ScalarNode) else None
        if interval is None:
            r.fail(node, "rate_limit.interval", "expected a duration such as 1s or 100ms")
            return None
    burst = 0
    if "burst" in found:
        node = found["burst"][1]
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:int":
            burst = int(node.value)
        else:
            r.fail(node, "rate_limit.burst", f"expected a whole number, not {shown(node)}")
            return None
    if not interval:  # 0 turns the limiter off, as in the toolkit
        return None
    if burst < 1:
        where = found.get("burst", found["interval"])[1]
        r.fail(where, "rate_limit.burst", f"{burst} lets no request through (set 1 or more)")
        return None
    return RateLimit(interval, burst)


def parse_duration(text: str) -> float | None:
    """Seconds of a Go duration (``1m30s``, ``250ms``, ``0``); None if it is not one."""
    text = str(text).strip()
    if text == "0":
        return 0.0
    total, pos = 0.0, 0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    return total if text else None
