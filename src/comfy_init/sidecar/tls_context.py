"""``tls_server_config`` of the web config: read with the exporter-toolkit's keys and
defaults, turned into a server ``ssl.SSLContext`` (the certificate is loaded here, so a bad
one stops the start), and the toolkit's ``client_allowed_sans`` check of a client
certificate.

Go and OpenSSL name things differently: cipher suites and curves are mapped by the tables
below.  TLS 1.3 suites cannot be chosen, in Go as here: those names are accepted and ignored.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from yaml.nodes import Node

from comfy_init.errors import ConfigError
from comfy_init.sidecar.yaml_reader import NodeReader

# Client auth types Python's ssl can do.  The toolkit's RequestClientCert and
# RequireAnyClientCert accept a certificate without verifying it: ssl verifies every one it
# asks for (and the toolkit's documentation calls those two insecure).
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's tls.CipherSuites() names (TLS 1.0-1.2) -> OpenSSL's.
CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1",
          "X25519": "X25519"}  # fmt: skip


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str = ""  # inline PEM
    key: str = ""
    client_ca_file: Path | None = None
    client_ca: str = ""
    client_auth_type: str = "NoClientCert"
    client_allowed_sans: tuple[str, ...] = ()
    min_version: str = "TLS12"
    max_version: str = "TLS13"
    cipher_suites: tuple[str, ...] = ()
    prefer_server_cipher_suites: bool = True
    curve_preferences: tuple[str, ...] = ()


KEYS = tuple(f.name for f in fields(TLSServerConfig))


def parse(r: NodeReader, node: Node) -> TLSServerConfig | None:
    """The section, or None when it sets nothing that turns TLS on (plain HTTP, as in the
    toolkit).  Problems go to ``r``."""
    base = "tls_server_config"
    auth_types = (*CLIENT_AUTH, *UNVERIFIED_CLIENT_AUTH)
    readers: dict[str, Callable[[Node, str], Any]] = {
        "cert_file": r.file,
        "key_file": r.file,
        "client_ca_file": r.file,
        "cert": r.string,
        "key": r.string,
        "client_ca": r.string,
        "client_auth_type": lambda n, k: r.choice(n, k, auth_types, ""),
        "client_allowed_sans": r.strings,
        "min_version": lambda n, k: r.choice(n, k, tuple(VERSIONS), "TLS12"),
        "max_version": lambda n, k: r.choice(n, k, tuple(VERSIONS), "TLS13"),
        "cipher_suites": r.strings,
        "prefer_server_cipher_suites": lambda n, k: r.boolean(n, k, default=True),
        "curve_preferences": r.strings,
    }
    found = r.mapping(node, base, KEYS)
    values = {name: readers[name](v, f"{base}.{name}") for name, (_, v) in found.items()}
    turns_on = ("cert_file", "key_file", "cert", "key", "client_ca_file", "client_ca")
    if not any(values.get(k) for k in (*turns_on, "client_auth_type")):
        return None
    values["client_auth_type"] = values.get("client_auth_type") or "NoClientCert"
    config = TLSServerConfig(**values)

    def fail(key: str, why: str) -> None:
        r.fail(found[key][1] if key in found else node, f"{base}.{key}", why)

    _check(config, fail)
    return config


def _check(config: TLSServerConfig, fail: Callable[[str, str], None]) -> None:
    """What the toolkit refuses when it builds its tls.Config, and what ssl cannot do."""
    for what in ("cert", "key"):
        file, inline = getattr(config, f"{what}_file"), getattr(config, what)
        if not file and not inline:
            fail(f"{what}_file", f"missing: TLS needs {what}_file (or an inline {what})")
        elif file and inline:
            fail(what, f"set either {what} or {what}_file, not both")
    if config.client_auth_type in UNVERIFIED_CLIENT_AUTH:
        fail(
            "client_auth_type",
            f"{config.client_auth_type} accepts unverified certificates: "
            "not supported (use RequireAndVerifyClientCert or VerifyClientCertIfGiven)",
        )
    has_ca = bool(config.client_ca_file or config.client_ca)
    if has_ca and config.client_auth_type == "NoClientCert":
        fail("client_auth_type", "a client CA is set but no client auth type (set "
             "RequireAndVerifyClientCert)")  # fmt: skip
    if config.client_allowed_sans and config.client_auth_type != "RequireAndVerifyClientCert":
        fail("client_allowed_sans", "needs client_auth_type RequireAndVerifyClientCert")
    if VERSIONS[config.min_version] > VERSIONS[config.max_version]:
        fail("min_version", f"{config.min_version} is above max_version {config.max_version}")
    for name in config.cipher_suites:
        if name not in CIPHERS and name not in TLS13_CIPHERS:
            fail("cipher_suites", f"unknown cipher suite {name!r} (Go's names, e.g. "
                 "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")  # fmt: skip
    for name in config.curve_preferences:
        if name not in CURVES:
            fail("curve_preferences", f"unknown curve {name!r} (one of {', '.join(CURVES)})")
    if len(config.curve_preferences) > 1:
        fail("curve_preferences", "Python's ssl can pin one curve only (list one, or none "
             "for OpenSSL's defaults)")  # fmt: skip


def build(config: TLSServerConfig, where: Callable[[str], str]) -> ssl.SSLContext:
    """A server context; ConfigError (``where(key)`` names file, line and key) if the
    certificate, key or client CA does not load."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = VERSIONS[config.min_version]
    context.maximum_version = VERSIONS[config.max_version]
    if config.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    chosen = [CIPHERS[name] for name in config.cipher_suites if name in CIPHERS]
    try:
        if chosen:
            context.set_ciphers(":".join(chosen))
        if config.curve_preferences:
            context.set_ecdh_curve(CURVES[config.curve_preferences[0]])
    except (ssl.SSLError, ValueError) as exc:
        key = "cipher_suites" if chosen else "curve_preferences"
        raise ConfigError(f"web config {where('tls_server_config.' + key)}: not available in "
                          f"this OpenSSL: {exc} (choose others)") from None  # fmt: skip
    key_name = "cert_file" if config.cert_file else "cert"
    try:
        with _pem(config.cert_file, config.cert) as cert, _pem(config.key_file, config.key) as key:
            context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(
            f"web config {where('tls_server_config.' + key_name)}: the certificate "
            f"{config.cert_file or '(inline)'} with the key {config.key_file or '(inline)'} "
            f"does not load: {_reason(exc)} (both must be PEM files, the key the certificate's)"
        ) from None
    context.verify_mode = CLIENT_AUTH[config.client_auth_type]
    if context.verify_mode != ssl.CERT_NONE:
        ca_key = "client_ca_file" if config.client_ca_file else "client_ca"
        try:
            if config.client_ca_file:
                context.load_verify_locations(cafile=config.client_ca_file)
            elif config.client_ca:
                context.load_verify_locations(cadata=config.client_ca)
            else:  # Go verifies against the system's roots then
                context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"web config {where('tls_server_config.' + ca_key)}: the client CA "
                f"{config.client_ca_file or '(inline)'} does not load: {_reason(exc)} "
                "(give PEM certificates)"
            ) from None
    return context


def san_allowed(peer: dict[str, Any] | None, allowed: tuple[str, ...]) -> bool:
    """Whether a verified client certificate (``getpeercert()``) has a SAN in ``allowed``
    (DNS, IP, e-mail or URI, compared exactly as the toolkit does)."""
    if not peer:
        return False
    wanted = {_canonical(a) for a in allowed}
    return any(_canonical(value) in wanted for _, value in peer.get("subjectAltName", ()))


def _canonical(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return value


@contextmanager
def _pem(path: Path | None, inline: str) -> Iterator[str]:
    """A path ssl can load: the file, or the inline PEM in an anonymous memory file."""
    if path is not None:
        yield str(path)
        return
    fd = os.memfd_create("comfy-init-pem")
    try:
        os.write(fd, inline.encode())
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)


def _reason(exc: OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"{exc.reason or exc}"
    return exc.strerror or str(exc)
