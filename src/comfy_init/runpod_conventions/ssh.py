"""SSH into the pod with ``PUBLIC_KEY``: authorized keys, host keys, the sshd command.

RunPod's start script appends ``PUBLIC_KEY`` to ``~/.ssh/authorized_keys`` at every start
(so the file grows by one copy per restart), generates the host keys its base image ships
without, and starts sshd.  Here each key is added once, the user's own lines stay as they
are, and a line that is not a public key is refused with its line number instead of
silently locking the user out.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from comfy_init.errors import ConfigError
from comfy_init.files.durable import write_atomic

# Key types sshd accepts in authorized_keys (OpenSSH 9); ssh-dss is long disabled.
KEY_TYPES = frozenset(
    {
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    }
)
# The host key files `ssh-keygen -A` makes (and sshd loads by default), under etc/ssh.
HOST_KEY_TYPES = ("rsa", "ecdsa", "ed25519")
# sshd refuses to start without its privilege separation directory.
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class PublicKey:
    type: str
    blob: str  # base64, as written
    line: str  # the whole line, options and comment included

    @property
    def identity(self) -> tuple[str, str]:
        """Two lines with the same identity authorize the same key."""
        return (self.type, self.blob)


def parse_line(line: str) -> PublicKey | None:
    """An authorized_keys line as a key (options before the type are allowed), or None."""
    words = line.split()
    for i, word in enumerate(words[:-1]):
        if word in KEY_TYPES and _blob_names(words[i + 1]) == word:
            return PublicKey(type=word, blob=words[i + 1], line=line.strip())
    return None


def _blob_names(blob: str) -> str | None:
    """The key type written inside a base64 key blob (a length-prefixed string), or None."""
    try:
        raw = base64.b64decode(blob, validate=True)
        (length,) = struct.unpack(">I", raw[:4])
        return raw[4 : 4 + length].decode("ascii")
    except (binascii.Error, struct.error, UnicodeDecodeError):
        return None


def parse_public_keys(value: str, source: str = "PUBLIC_KEY") -> list[PublicKey]:
    """Every key in ``value`` (one per line; blank lines skipped); ConfigError naming each
    line that is not an OpenSSH public key."""
    keys: list[PublicKey] = []
    problems: list[str] = []
    for number, line in enumerate(value.splitlines(), start=1):
        if not line.strip():
            continue
        key = parse_line(line)
        if key is None:
            shown = line.strip() if len(line.strip()) <= 40 else line.strip()[:40] + "…"
            problems.append(
                f"{source} line {number}: {shown!r} is not an OpenSSH public key (put one key "
                "per line as `ssh-keygen` writes it, e.g. 'ssh-ed25519 AAAAC3… you@laptop')"
            )
        else:
            keys.append(key)
    if problems:
        raise ConfigError(problems)
    return keys


def merge_authorized_keys(existing: str, keys: Sequence[PublicKey]) -> tuple[str, int]:
    """``existing`` with every key it does not hold yet appended; (text, keys added).

    Existing lines are kept byte for byte (comments, options, keys of other users)."""
    present = {k.identity for k in map(parse_line, existing.splitlines()) if k is not None}
    added = []
    for key in keys:
        if key.identity not in present:
            present.add(key.identity)
            added.append(key.line)
    if not added:
        return existing, 0
    head = existing if not existing or existing.endswith("\n") else existing + "\n"
    return head + "\n".join(added) + "\n", len(added)


def install_authorized_keys(keys: Sequence[PublicKey], ssh_dir: Path) -> int:
    """Add ``keys`` to ``ssh_dir/authorized_keys`` (dir 0700, file 0600, written atomically);
    how many were added."""
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(ssh_dir, 0o700)  # sshd's StrictModes refuses a group/world-writable one
    path = ssh_dir / "authorized_keys"
    try:
        existing = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        existing = ""
    text, added = merge_authorized_keys(existing, keys)
    if added or not path.exists():
        write_atomic(path, text, mode=0o600)
    else:
        os.chmod(path, 0o600)
    return added


def missing_host_keys(etc_ssh: Path) -> list[str]:
    """Host key types with no private key file in ``etc_ssh``."""
    return [t for t in HOST_KEY_TYPES if not (etc_ssh / f"ssh_host_{t}_key").is_file()]


def host_keys_argv(ssh_keygen: str, prefix: Path = Path("/")) -> list[str]:
    """``ssh-keygen -A``: make every missing default host key under ``prefix``/etc/ssh."""
    argv = [ssh_keygen, "-A"]
    return argv if prefix == Path("/") else [*argv, "-f", str(prefix)]


def sshd_argv(sshd: str) -> list[str]:
    """sshd in the foreground (-D) for supervisord, logging to stderr (-e), which supervisord
    writes to its log and comfy-init relays to the container's output."""
    return [sshd, "-D", "-e"]
