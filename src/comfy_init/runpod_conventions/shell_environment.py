"""The container's environment, for SSH shells: ``/etc/rp_environment``, sourced by
``~/.bashrc``.

sshd gives a session a fresh environment, so without this an SSH shell sees none of the
pod's variables (``COMFYUI_PATH``, ``CACHE_PATH``, tokens…) and ``comfy-init warmup
--status`` over SSH would look at the defaults instead of the pod's settings.  RunPod's
start script writes the same file (scripts source it by that name) and appends the source
line to ``.bashrc``; there it lands after the early ``return`` that Ubuntu's ``.bashrc`` has
for non-interactive shells, so ``ssh pod some-command`` missed it.  Here the line goes at
the top.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from comfy_init.files.durable import write_atomic

ENVIRONMENT_FILE = Path("/etc/rp_environment")
SOURCE_LINE = (
    "[ -r /etc/rp_environment ] && . /etc/rp_environment"
    "  # comfy-init: the container's environment in SSH shells"
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Not exported: the SSH key (as RunPod), and what belongs to each shell rather than the pod.
LEFT_OUT = frozenset({"PUBLIC_KEY", "HOME", "PWD", "OLDPWD", "SHLVL", "TERM", "_"})


def render(environ: Mapping[str, str]) -> str:
    """``export NAME=value`` lines, shell-quoted, sorted by name; names a shell cannot
    assign are left out."""
    lines = ["# The container's environment, written by comfy-init at start: do not edit."]
    for name in sorted(environ):
        if name not in LEFT_OUT and _NAME.fullmatch(name):
            lines.append(f"export {name}={shlex.quote(environ[name])}")
    return "\n".join(lines) + "\n"


def with_source_line(bashrc: str, source_line: str = SOURCE_LINE) -> str | None:
    """``bashrc`` with the source line first, or None when it already has it."""
    if source_line in bashrc.splitlines():
        return None
    return source_line + "\n" + bashrc


def install(
    environ: Mapping[str, str],
    *,
    path: Path = ENVIRONMENT_FILE,
    bashrc: Path,
    source_line: str = SOURCE_LINE,
) -> bool:
    """Write the environment file (root only: it holds the pod's tokens) and put the source
    line in ``bashrc`` (made if missing, its mode kept); True if ``bashrc`` changed."""
    write_atomic(path, render(environ), mode=0o600)
    try:
        text = bashrc.read_text(encoding="utf-8")
        mode = bashrc.stat().st_mode & 0o7777
    except FileNotFoundError:
        text, mode = "", 0o644
    updated = with_source_line(text, source_line)
    if updated is None:
        return False
    write_atomic(bashrc, updated, mode=mode)
    return True
