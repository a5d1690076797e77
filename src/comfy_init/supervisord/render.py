"""Render ``supervisord.conf.j2`` into supervisord's config, and check the result (pure).

The template ships beside this module (and at the top of the repository); a user may
replace it with ``SUPERVISORD_TEMPLATE``.  Rendering uses Jinja2 ``StrictUndefined`` so a
misspelt variable fails the start instead of producing an empty value.  The text is then
parsed by supervisor's own option parser, so a config supervisord would refuse is reported
before supervisord starts, naming the template.
"""

from __future__ import annotations

import configparser
import io
import shlex
import socket
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from comfy_init.errors import ConfigError
from comfy_init.settings import Settings
from comfy_init.supervisord.comfyui_process import COMFYUI
from comfy_init.supervisord.programs import WARMUP_EXIT_CODES, Program

TEMPLATE_NAME = "supervisord.conf.j2"
SHIPPED_TEMPLATE = Path(__file__).with_name(TEMPLATE_NAME)
# sun_path is 108 bytes on Linux, one of them the terminating NUL.
MAX_SOCKET_PATH = 107
REQUIRED_SECTIONS = ("unix_http_server", "rpcinterface:supervisor", "supervisorctl")
COMMENT_WIDTH = 94


def pct(value: object) -> str:
    """Escape ``%`` so supervisord's ``%(name)s`` expansion leaves the text as it is."""
    return str(value).replace("%", "%%")


def command(argv: Sequence[str]) -> str:
    """An argv as a ``command=`` value: supervisord splits it like a POSIX shell."""
    for arg in argv:
        if "\n" in arg or "\0" in arg:
            raise ConfigError(
                f"program argument {arg!r}: contains a line break or NUL, which a supervisord "
                "config line cannot hold (remove it from COMFYUI_ARGS or the -- arguments)"
            )
    return pct(shlex.join(argv))


def environment(env: Mapping[str, str]) -> str:
    """A dict as supervisord's ``environment=KEY="value",...`` (values may not hold quotes)."""
    parts = []
    for key, value in env.items():
        if not key.isidentifier() or any(c in value for c in "\"'\n\0"):
            raise ConfigError(
                f"program environment {key}={value!r}: supervisord's environment= cannot hold "
                "this name or value (use a plain name and a value without quotes)"
            )
        parts.append(f'{key}="{value}"')
    return pct(",".join(parts))


def comment(text: str) -> str:
    """``text`` as ``;`` comment lines of at most ``COMMENT_WIDTH`` characters (a longer word
    gets a line of its own)."""
    lines = textwrap.wrap(text, COMMENT_WIDTH - 2, break_long_words=False, break_on_hyphens=False)
    return "\n".join("; " + line for line in lines)


def context(
    settings: Settings, *, template: str, user: str, programs: Sequence[Program]
) -> dict[str, Any]:
    """The template's variables (its header comment lists them)."""
    socket_path = settings.supervisord_socket
    if len(str(socket_path).encode()) > MAX_SOCKET_PATH:
        raise ConfigError(
            f"RUN_DIR={str(settings.run_dir)!r}: the control socket path {socket_path} is longer "
            f"than {MAX_SOCKET_PATH} bytes, the limit of a unix socket (choose a shorter RUN_DIR)"
        )
    by_name = {p.name: p for p in programs}
    return {
        "template": template,
        "run_dir": str(settings.run_dir),
        "socket": str(socket_path),
        "pidfile": str(settings.supervisord_pidfile),
        "log_dir": str(settings.log_dir),
        "user": user,
        "programs": list(programs),
        # Templates written before ``programs`` name each program.
        "comfyui": by_name[COMFYUI],
        "metrics": by_name.get("metrics"),
        "warmup": by_name.get("warmup"),
        "warmup_exit_codes": ",".join(str(c) for c in WARMUP_EXIT_CODES),
    }


def template_path(settings: Settings) -> Path:
    return settings.supervisord_template or SHIPPED_TEMPLATE


def read_template(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"supervisord template {path}: cannot be read: {exc} "
            "(set SUPERVISORD_TEMPLATE to a readable file, or unset it for the shipped one)"
        ) from None


def render(text: str, name: str, ctx: Mapping[str, Any]) -> str:
    """Render template ``text`` (called ``name`` in messages) with ``ctx``."""
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - the output is an ini file, not HTML
    )
    env.filters.update(pct=pct, command=command, environment=environment, comment=comment)
    try:
        return env.from_string(text).render(**ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(
            f"supervisord template {name}:{exc.lineno}: {exc.message} (fix the template)"
        ) from None
    except jinja2.UndefinedError as exc:
        known = ", ".join(sorted(ctx))
        raise ConfigError(
            f"supervisord template {name}: {exc.message} (variables available: {known})"
        ) from None


def validate(text: str, name: str, dest: Path) -> None:
    """Parse the rendered ``text`` as supervisord would; raise ConfigError naming ``name``."""
    from supervisor.options import ServerOptions

    where = f"supervisord config rendered from {name}"
    options = ServerOptions()
    options.configfile = str(dest)
    options.here = str(dest.parent)
    try:
        options.read_config(io.StringIO(text))
    except (ValueError, configparser.Error) as exc:
        message = str(exc).split(" Available names:")[0]
        raise ConfigError(f"{where}: {message} (fix the template)") from None
    section = options.configroot.supervisord
    problems = [f"{where}: {p}" for p in _structure_problems(text, section)]
    if problems:
        raise ConfigError(problems)


def _structure_problems(text: str, section: Any) -> list[str]:
    parser = configparser.RawConfigParser(strict=False)
    parser.read_string(text)
    problems = [
        f"has no [{s}] section (supervisorctl and comfy-init need it; keep it in the template)"
        for s in REQUIRED_SECTIONS
        if not parser.has_section(s)
    ]
    if any(c["family"] is not socket.AF_UNIX for c in section.server_configs):
        problems.append(
            "has an [inet_http_server] section: a TCP control port would let anyone on the "
            "network control supervisord (remove it; the unix socket is enough)"
        )
    if not section.nodaemon:
        problems.append(
            "sets nodaemon=false: supervisord must stay in the foreground under comfy-init "
            "(set nodaemon=true)"
        )
    names = []
    for group in section.process_group_configs:
        for proc in group.process_configs:
            names.append(proc.name)
            try:
                shlex.split(proc.command)
            except ValueError as exc:
                problems.append(
                    f"[program:{proc.name}] command= cannot be split ({exc}): "
                    f"{proc.command!r} (balance the quotes)"
                )
    if COMFYUI not in names:
        problems.append(f"has no [program:{COMFYUI}] (comfy-init supervises ComfyUI by that name)")
    return problems
