"""SSH with PUBLIC_KEY: keys parsed and checked, added once to authorized_keys with sshd's
modes, the user's own lines kept; host keys made when missing; sshd's command."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from comfy_init.errors import ConfigError
from comfy_init.runpod_conventions import ssh

ED25519 = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM0jy/yqTkgg0GLCo9kMTebjflkiJa+EeIKApOZLZYVi me@laptop"
)
ECDSA = (
    "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBE60gGZnDKJAbSiyhcwr"
    "GzFHXL+OFxKYcdxvrP44K5hhZ4aGTJZnHawXdZiyaCvXtndto4Dn/1/JQlzkesz9DYg="
)


def test_public_key_lines_become_keys_with_type_blob_and_the_whole_line() -> None:
    keys = ssh.parse_public_keys(f"\n  {ED25519}  \n\n{ECDSA}\n")
    assert [(k.type, k.line) for k in keys] == [
        ("ssh-ed25519", ED25519),
        ("ecdsa-sha2-nistp256", ECDSA),
    ]
    assert keys[0].blob == ED25519.split()[1]


def test_a_key_with_authorized_keys_options_before_its_type_is_accepted() -> None:
    line = f'from="10.0.0.0/8",no-agent-forwarding {ED25519}'
    (key,) = ssh.parse_public_keys(line)
    assert (key.type, key.line) == ("ssh-ed25519", line)


@pytest.mark.parametrize(
    "bad",
    [
        "AAAAC3NzaC1lZDI1NTE5AAAAIM0jy/yqTkgg0GLCo9kMTebjflkiJa+EeIKApOZLZYVi",  # no type
        "ssh-ed25519 not-base64!",
        # the blob says ecdsa, the line says ed25519: a pasted half of two keys
        "ssh-ed25519 " + ECDSA.split()[1],
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "ssh-dss AAAAB3NzaC1kc3MAAACBAP",
    ],
)
def test_a_line_that_is_not_a_public_key_is_refused_naming_the_variable_and_line(bad: str) -> None:
    with pytest.raises(ConfigError) as err:
        ssh.parse_public_keys(f"{ED25519}\n{bad}")
    assert "PUBLIC_KEY line 2:" in str(err.value)
    assert "not an OpenSSH public key" in str(err.value)


def test_every_bad_line_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as err:
        ssh.parse_public_keys("nope\n" + ED25519 + "\nstill nope")
    assert [p.split(":")[0] for p in err.value.problems] == [
        "PUBLIC_KEY line 1",
        "PUBLIC_KEY line 3",
    ]


def test_merge_appends_only_keys_not_there_and_keeps_existing_lines_byte_for_byte() -> None:
    existing = f'# my laptop\ncommand="echo hi" {ECDSA}\n'
    keys = ssh.parse_public_keys(f"{ECDSA} other-comment\n{ED25519}")
    text, added = ssh.merge_authorized_keys(existing, keys)
    assert (text, added) == (existing + ED25519 + "\n", 1)
    assert ssh.merge_authorized_keys(text, keys) == (text, 0), "a restart adds nothing"


def test_merge_ends_an_unterminated_last_line_before_appending() -> None:
    text, added = ssh.merge_authorized_keys(ECDSA, ssh.parse_public_keys(ED25519))
    assert (text, added) == (f"{ECDSA}\n{ED25519}\n", 1)


def test_install_creates_ssh_dir_0700_and_authorized_keys_0600(tmp_path: Path) -> None:
    ssh_dir = tmp_path / "root" / ".ssh"
    assert ssh.install_authorized_keys(ssh.parse_public_keys(ED25519), ssh_dir) == 1
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((ssh_dir / "authorized_keys").stat().st_mode) == 0o600
    assert (ssh_dir / "authorized_keys").read_text() == ED25519 + "\n"
    assert [p.name for p in ssh_dir.iterdir()] == ["authorized_keys"], "no temp file left"


def test_install_tightens_modes_sshd_would_refuse_and_adds_nothing_twice(tmp_path: Path) -> None:
    ssh_dir = tmp_path / ".ssh"
    ssh_dir.mkdir(mode=0o777)
    os.chmod(ssh_dir, 0o777)  # noqa: S103 - the loose mode under test
    keys_file = ssh_dir / "authorized_keys"
    keys_file.write_text(ED25519 + "\n")
    os.chmod(keys_file, 0o666)  # noqa: S103 - the loose mode under test
    assert ssh.install_authorized_keys(ssh.parse_public_keys(ED25519), ssh_dir) == 0
    assert stat.S_IMODE(ssh_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    assert keys_file.read_text() == ED25519 + "\n"


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_ssh_keygen_makes_only_the_missing_host_keys_under_the_prefix(tmp_path: Path) -> None:
    etc_ssh = tmp_path / "etc" / "ssh"
    etc_ssh.mkdir(parents=True)
    (etc_ssh / "ssh_host_rsa_key").write_text("kept\n")
    assert ssh.missing_host_keys(etc_ssh) == ["ecdsa", "ed25519"]
    keygen = shutil.which("ssh-keygen")
    assert keygen is not None
    argv = ssh.host_keys_argv(keygen, tmp_path)
    subprocess.run(argv, check=True, capture_output=True, timeout=60)
    assert ssh.missing_host_keys(etc_ssh) == []
    assert (etc_ssh / "ssh_host_rsa_key").read_text() == "kept\n"
    assert stat.S_IMODE((etc_ssh / "ssh_host_ed25519_key").stat().st_mode) == 0o600


def test_host_keys_go_to_etc_ssh_without_a_prefix_and_sshd_runs_in_the_foreground() -> None:
    assert ssh.host_keys_argv("/usr/bin/ssh-keygen") == ["/usr/bin/ssh-keygen", "-A"]
    assert ssh.sshd_argv("/usr/sbin/sshd") == ["/usr/sbin/sshd", "-D", "-e"]
