"""The metrics port's web config file: exporter-toolkit's format read as the toolkit reads
it, and every kind of bad file refused with file, line and key named."""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import pytest

from comfy_init.errors import EXIT_CONFIG, ConfigError
from comfy_init.sidecar import web_config as wc
from harness.certs import make_ca, make_cert, password_hash, web_config

pytestmark = pytest.mark.timeout(60)


def refused(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        wc.load(path)
    assert caught.value.exit_code == EXIT_CONFIG
    return str(caught.value)


def test_node_exporters_example_file_is_read_whole_with_paths_relative_to_the_file(
    tmp_path: Path,
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    server = make_cert(certs, "server")
    ca = make_ca(certs)
    hashed = password_hash("s3cret")
    path = web_config(
        tmp_path,
        f"""\
tls_server_config:
  cert_file: certs/server.pem
  key_file: certs/server.key
  client_auth_type: VerifyClientCertIfGiven
  client_ca_file: certs/ca.pem
  min_version: TLS13
  prefer_server_cipher_suites: false
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
basic_auth_users:
  prometheus: {hashed}
  'alice': {password_hash("other")}
rate_limit:
  interval: 500ms
  burst: 20
""",
    )
    config = wc.load(path)
    assert config.tls is not None
    assert (config.tls.cert_file, config.tls.key_file) == (server.cert, server.key)
    assert config.tls.client_ca_file == ca.cert
    assert config.users["prometheus"] == hashed.encode()
    assert set(config.users) == {"prometheus", "alice"}
    assert config.headers == {
        "X-Frame-Options": "deny",
        "Strict-Transport-Security": "max-age=31536000",
    }
    assert config.rate_limit == wc.RateLimit(0.5, 20)
    assert config.http2 is False
    context = config.tls_context
    assert context is not None
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert context.verify_mode == ssl.CERT_OPTIONAL
    assert not context.options & ssl.OP_CIPHER_SERVER_PREFERENCE


def test_an_empty_file_or_one_without_tls_keys_means_plain_http_and_no_password(
    tmp_path: Path,
) -> None:
    for text in ("", "# nothing\n", "tls_server_config:\n  min_version: TLS13\n"):
        config = wc.load(web_config(tmp_path, text))
        assert (config.tls, config.tls_context, dict(config.users)) == (None, None, {})


def test_inline_certificate_and_key_load_like_files(tmp_path: Path) -> None:
    pair = make_cert(tmp_path, "server")
    indent = "\n    "
    cert = indent.join(pair.cert.read_text().splitlines())
    key = indent.join(pair.key.read_text().splitlines())
    path = web_config(
        tmp_path, f"tls_server_config:\n  cert: |{indent}{cert}\n  key: |{indent}{key}\n"
    )
    config = wc.load(path)
    assert config.tls_context is not None
    assert config.tls is not None
    assert config.tls.cert_file is None
    assert not [fd for fd in os.listdir("/proc/self/fd") if _is_memfd(fd)]  # closed again


def _is_memfd(fd: str) -> bool:
    try:
        return "comfy-init-pem" in os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False


def test_go_durations_are_read_as_seconds() -> None:
    assert wc.parse_duration("1m30s") == 90.0
    assert wc.parse_duration("250ms") == 0.25
    assert wc.parse_duration("0") == 0.0
    assert wc.parse_duration("1.5h") == 5400.0
    for bad in ("", "5", "1 s", "s", "1d"):
        assert wc.parse_duration(bad) is None, bad


# --- each kind of bad file: file, line and key named


def test_a_missing_file_is_refused_naming_it_and_the_variable(tmp_path: Path) -> None:
    message = refused(tmp_path / "nope.yml")
    assert f"web config {tmp_path / 'nope.yml'}: cannot be read: No such file" in message
    assert "METRICS_WEB_CONFIG" in message


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "web-config.yml"
    path.write_bytes(b"basic_auth_users:\n  a: \xff\xfe\n")
    assert f"web config {path}: cannot be read: not UTF-8 text" in refused(path)


def test_bad_yaml_is_refused_with_its_line(tmp_path: Path) -> None:
    path = web_config(tmp_path, "basic_auth_users:\n  a: b\n c: [\n")
    message = refused(path)
    assert message.startswith(f"web config {path}:3: not valid YAML: ")


def test_unknown_and_repeated_keys_are_refused_with_line_and_key(tmp_path: Path) -> None:
    path = web_config(
        tmp_path,
        "tls_server_config:\n  cert_fil: x.pem\nbasic_auth_user:\n  a: b\n"
        "http_server_config:\n  http2: true\n  http2: false\n",
    )
    problems = refused(path)
    assert f"{path}:2: tls_server_config.cert_fil: unknown key (known here: cert_file," in problems
    assert f"{path}:3: basic_auth_user: unknown key" in problems
    assert f"{path}:7: http_server_config.http2: appears twice" in problems
    assert problems.startswith("3 configuration problems:")


@pytest.mark.parametrize(
    "value",
    ["plaintext", "$2y$10$tooshort", "$2y$03$" + "a" * 53, "$3y$10$" + "a" * 53, "123"],
)
def test_a_password_that_is_not_a_bcrypt_hash_is_refused_naming_the_user(
    tmp_path: Path, value: str
) -> None:
    path = web_config(
        tmp_path, f"basic_auth_users:\n  ok: {password_hash('x')}\n  bob: '{value}'\n"
    )
    message = refused(path)
    assert message.startswith(f"web config {path}:3: basic_auth_users.bob: is not a bcrypt hash")
    assert "htpasswd -nBC 10" in message


def test_a_certificate_that_does_not_load_is_refused_naming_the_key_and_files(
    tmp_path: Path,
) -> None:
    pair = make_cert(tmp_path, "server")
    other = make_cert(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = {
        "garbage": (garbage, pair.key),
        "wrong key": (pair.cert, other.key),
        "missing": (tmp_path / "absent.pem", pair.key),
    }
    for name, (cert, key) in cases.items():
        path = web_config(tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n")
        message = refused(path)
        assert message.startswith(f"web config {path}:2: tls_server_config.cert_file: "), name
        assert f"the certificate {cert} with the key {key} does not load" in message, name


def test_tls_settings_the_toolkit_refuses_are_refused(tmp_path: Path) -> None:
    pair = make_cert(tmp_path, "server")
    files = f"  cert_file: {pair.cert}\n  key_file: {pair.key}\n"
    cases = {
        "  client_auth_type: RequireAnyClientCert\n": "client_auth_type: RequireAnyClientCert "
        "accepts unverified certificates",
        f"  client_ca_file: {pair.cert}\n": "client_auth_type: a client CA is set but no client",
        "  client_allowed_sans: [a]\n": "client_allowed_sans: needs client_auth_type",
        "  min_version: TLS13\n  max_version: TLS12\n": "min_version: TLS13 is above max_version",
        "  min_version: TLS14\n": "min_version: 'TLS14' is not one of TLS10, TLS11, TLS12, TLS13",
        "  cipher_suites: [TLS_NOPE]\n": "cipher_suites: unknown cipher suite 'TLS_NOPE'",
        "  curve_preferences: [P256]\n": "curve_preferences: unknown curve 'P256'",
        "  prefer_server_cipher_suites: maybe\n": "prefer_server_cipher_suites: expected true",
    }
    for extra, expected in cases.items():
        path = web_config(tmp_path, "tls_server_config:\n" + files + extra)
        assert f"tls_server_config.{expected}" in refused(path), extra
    path = web_config(tmp_path, f"tls_server_config:\n  cert_file: {pair.cert}\n")
    assert "tls_server_config.key_file: missing: TLS needs key_file" in refused(path)


def test_ciphers_and_a_curve_by_their_go_names_reach_the_context(tmp_path: Path) -> None:
    pair = make_cert(tmp_path, "server")
    path = web_config(
        tmp_path,
        f"tls_server_config:\n  cert_file: {pair.cert}\n  key_file: {pair.key}\n"
        "  max_version: TLS12\n  curve_preferences: [CurveP384]\n  cipher_suites:\n"
        "    - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n    - TLS_AES_128_GCM_SHA256\n",
    )
    context = wc.load(path).tls_context
    assert context is not None
    tls12 = [c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 == ["ECDHE-ECDSA-AES256-GCM-SHA384"]


def test_headers_and_rate_limit_values_the_toolkit_refuses_are_refused(tmp_path: Path) -> None:
    path = web_config(
        tmp_path,
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n    Server: x\n"
        "rate_limit:\n  interval: soon\n",
    )
    message = refused(path)
    assert f"{path}:3: http_server_config.headers.X-Frame-Options: 'allow' is not one of" in message
    assert f"{path}:4: http_server_config.headers.Server: unknown key" in message
    assert f"{path}:6: rate_limit.interval: expected a duration" in message
    path = web_config(tmp_path, "rate_limit:\n  interval: 1s\n  burst: 0\n")
    assert "rate_limit.burst: 0 lets no request through" in refused(path)
