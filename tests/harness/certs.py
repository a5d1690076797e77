"""Certificates (made with the ``openssl`` command), bcrypt hashes and web config files for
the metrics port's tests."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import bcrypt

LOCAL_SAN = "DNS:localhost,IP:127.0.0.1"


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def openssl(*args: str | Path, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, check=True, capture_output=True, timeout=60
    )


def make_ca(directory: Path, name: str = "ca") -> Pair:
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", pair.key, "-out", pair.cert, "-days", "2", "-subj", f"/CN={name}",
            cwd=directory)  # fmt: skip
    return pair


def make_cert(directory: Path, name: str, ca: Pair | None = None, san: str = LOCAL_SAN) -> Pair:
    """A certificate for ``san``: self-signed, or signed by ``ca``."""
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    common = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
              pair.key, "-subj", f"/CN={name}", "-addext", f"subjectAltName={san}"]  # fmt: skip
    if ca is None:
        openssl("req", "-x509", *common, "-out", pair.cert, "-days", "2", cwd=directory)
        return pair
    csr = directory / f"{name}.csr"
    openssl("req", "-new", *common, "-out", csr, cwd=directory)
    openssl("x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial",
            "-days", "2", "-copy_extensions", "copy", "-out", pair.cert, cwd=directory)  # fmt: skip
    return pair


def password_hash(password: str, cost: int = 4) -> str:
    """A bcrypt hash as htpasswd -B writes it ($2y$), cheap to check in tests."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
    return "$2y$" + hashed[4:]


def web_config(directory: Path, text: str, name: str = "web-config.yml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path
