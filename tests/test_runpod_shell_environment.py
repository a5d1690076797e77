"""/etc/rp_environment: the container's variables, shell-quoted, sourced from the top of
.bashrc so SSH shells (interactive or not) see the pod's settings."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from comfy_init.runpod_conventions import shell_environment as env_file


def test_render_exports_each_variable_shell_quoted_sorted_and_leaves_out_the_ssh_key() -> None:
    text = env_file.render(
        {
            "COMFYUI_PATH": "/workspace/ComfyUI",
            "COMFYUI_ARGS": "--listen --preview-method 'auto'",
            "PUBLIC_KEY": "ssh-ed25519 AAAA me",
            "HOME": "/root",
            "not-a-name": "x",
            "http_proxy": "",
        }
    )
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == [
        "export COMFYUI_ARGS='--listen --preview-method '\"'\"'auto'\"'\"''",
        "export COMFYUI_PATH=/workspace/ComfyUI",
        "export http_proxy=''",
    ]


def test_bash_sourcing_the_file_gets_every_value_back_exactly(tmp_path: Path) -> None:
    values = {
        "A": 'it\'s $HOME and `cmd` "quoted"',
        "B": "line one\nline two",
        "C": "  spaces  ",
        "D": "ünïcode ✓",
    }
    path = tmp_path / "rp_environment"
    path.write_text(env_file.render(values), encoding="utf-8")
    shown = subprocess.run(
        ["bash", "-c", f'. {path}; printf \'%s\\0\' "$A" "$B" "$C" "$D"'],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert shown.split("\0")[:-1] == list(values.values())


def test_the_source_line_goes_first_once() -> None:
    bashrc = "[ -z \"$PS1\" ] && return\nalias ll='ls -l'\n"
    updated = env_file.with_source_line(bashrc)
    assert updated == env_file.SOURCE_LINE + "\n" + bashrc
    assert env_file.with_source_line(updated) is None


def test_install_writes_a_root_only_file_and_keeps_bashrc_mode(tmp_path: Path) -> None:
    path, bashrc = tmp_path / "rp_environment", tmp_path / ".bashrc"
    bashrc.write_text("echo hi\n")
    bashrc.chmod(0o640)
    line = f"[ -r {path} ] && . {path}"
    assert env_file.install({"X": "1"}, path=path, bashrc=bashrc, source_line=line)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(bashrc.stat().st_mode) == 0o640
    assert bashrc.read_text() == line + "\necho hi\n"
    assert not env_file.install({"X": "2"}, path=path, bashrc=bashrc, source_line=line)
    assert "export X=2" in path.read_text(), "the file is rewritten at every start"


def test_a_non_interactive_bash_with_an_early_return_still_sees_the_variables(
    tmp_path: Path,
) -> None:
    """What `ssh pod comfy-init warmup --status` runs: bash -c, reading .bashrc first (as
    sshd's bash does), whose first lines return early when not interactive."""
    path, bashrc = tmp_path / "rp_environment", tmp_path / ".bashrc"
    bashrc.write_text('[ -z "$PS1" ] && return\nexport LATE=1\n')
    env_file.install({"CACHE_PATH": "/mnt/nvme"}, path=path, bashrc=bashrc, source_line=f". {path}")
    out = subprocess.run(
        ["bash", "-c", f'. {bashrc}; echo "$CACHE_PATH/${{LATE:-}}"'],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert out == "/mnt/nvme/\n"
