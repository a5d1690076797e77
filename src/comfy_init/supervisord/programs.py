"""What supervisord runs: ``PROGRAMS``, one entry per program with all its settings (pure).

Each entry makes its ``Program`` from the ``Start`` (settings and the start command's
choices), or leaves itself out; the template writes one ``[program:x]`` section per
program.  A new program is one function here, listed in ``PROGRAMS``, and its test.

ComfyUI is started as ``env --default-signal=PIPE,XFSZ <python> main.py --port P
--extra-model-paths-config <our yaml> $COMFYUI_ARGS [--highvram|--lowvram] [-- args]`` in
``$COMFYUI_PATH``: supervisord leaves SIGPIPE and SIGXFSZ ignored in its children, coreutils
``env`` puts them back to default before ComfyUI's interpreter starts.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from comfy_init.errors import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_WARMUP_INCOMPLETE,
    ConfigError,
    EnvironmentMissing,
)
from comfy_init.runpod_conventions import services, ssh
from comfy_init.settings import Settings
from comfy_init.supervisord.comfyui_process import COMFYUI

# ComfyUI's mutually exclusive VRAM-mode flags: given two, ComfyUI exits 2 at start.
VRAM_FLAGS = ("--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram", "--cpu")
# Flags comfy-init sets itself from a variable; a second copy elsewhere would silently win.
OWNED_FLAGS = {"--port": "COMFYUI_PORT"}
DEFAULT_SIGNALS = "--default-signal=PIPE,XFSZ"
EXTRA_MODEL_PATHS_FLAG = "--extra-model-paths-config"
# The background warmup's expected exits: done, done with config lines skipped, done with
# files that failed or did not fit.
WARMUP_EXIT_CODES = (EXIT_OK, EXIT_CONFIG, EXIT_WARMUP_INCOMPLETE)


@dataclass(frozen=True, kw_only=True)
class Program:
    """One ``[program:x]`` section: every value the template writes for it."""

    name: str
    argv: tuple[str, ...]
    directory: Path
    priority: int  # started lowest first, stopped highest first (one at a time)
    autostart: bool = True  # False: started later over the socket (ComfyUI on an empty volume)
    autorestart: bool
    start_seconds: int  # supervisord's startsecs: up this long counts as started
    start_retries: int = 3  # early crashes retried before FATAL
    exit_codes: tuple[int, ...] = (0,)  # expected exits (autorestart=true restarts any)
    stop_signal: str = "TERM"
    stop_seconds: int  # between the stop signal and SIGKILL (stopwaitsecs)
    log_max_bytes: str = "5MB"  # $RUN_DIR/logs/<name>.log rotates at this size
    log_backups: int = 2
    environment: dict[str, str] = field(default_factory=lambda: {"PYTHONUNBUFFERED": "1"})
    comment: str = ""  # written above the section, wrapped


@dataclass(frozen=True)
class Start:
    """What the programs are made from: the settings and the start command's choices."""

    settings: Settings
    python: str  # ComfyUI's interpreter (``comfyui_python``)
    vram_flags: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()  # arguments after ``--``
    background_warmup: bool = False
    env_binary: str = "/usr/bin/env"
    own_python: str = sys.executable  # comfy-init's interpreter, for its own programs
    comfyui_installed: bool = True  # False: ComfyUI waits (not autostarted) for its main.py
    sshd: str | None = None  # sshd's path when SSH runs
    jupyter_lab: str | None = None  # jupyter-lab's path when JupyterLab runs
    post_start: bool = False  # there is a /post_start.sh
    comfyui_environment: Mapping[str, str] = field(default_factory=dict)  # the readahead's hook


def strip_separator(extra: Sequence[str]) -> list[str]:
    """Arguments after ``--`` on the command line, without the ``--`` itself."""
    args = list(extra)
    return args[1:] if args[:1] == ["--"] else args


def check_flags(sources: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Reject a combination ComfyUI itself would refuse, naming where each flag came from.

    ``sources`` is ``(where, args)`` in order, e.g. ``("COMFYUI_ARGS", (...))``.
    """
    problems: list[str] = []
    modes = [(flag, where) for where, args in sources for flag in args if flag in VRAM_FLAGS]
    if len(modes) > 1:
        found = ", ".join(f"{flag} (from {where})" for flag, where in modes)
        problems.append(
            f"ComfyUI arguments: more than one VRAM mode: {found}; ComfyUI accepts at most "
            "one of " + " ".join(VRAM_FLAGS) + " (keep one)"
        )
    for where, args in sources:
        for arg in args:
            flag = arg.split("=", 1)[0]
            if flag in OWNED_FLAGS:
                var = OWNED_FLAGS[flag]
                problems.append(
                    f"ComfyUI arguments: {arg!r} in {where} would override {var} "
                    f"(set {var} instead and remove {flag})"
                )
    if problems:
        raise ConfigError(problems)


def comfyui_python(settings: Settings, which: Callable[[str], str | None] = shutil.which) -> str:
    """The interpreter for ComfyUI: COMFYUI_PYTHON, a venv inside ComfyUI, else python3."""
    if settings.comfyui_python:
        found = which(settings.comfyui_python)
        if found is None:
            raise EnvironmentMissing(
                f"ComfyUI interpreter COMFYUI_PYTHON={settings.comfyui_python!r}: not found or "
                "not executable (set COMFYUI_PYTHON to a python that runs ComfyUI, or unset it)"
            )
        return found
    for venv in ("venv", ".venv"):
        candidate = settings.comfyui_path / venv / "bin" / "python"
        if os.access(candidate, os.X_OK):
            return str(candidate)
    found = which("python3")
    if found is None:
        raise EnvironmentMissing(
            "ComfyUI interpreter: no venv in COMFYUI_PATH and no python3 on PATH "
            "(set COMFYUI_PYTHON)"
        )
    return found


def check_comfyui_present(settings: Settings) -> Path:
    main = settings.comfyui_path / "main.py"
    if not main.is_file():
        raise EnvironmentMissing(
            f"ComfyUI not found: {main} does not exist "
            f"(COMFYUI_PATH={str(settings.comfyui_path)!r}; set COMFYUI_PATH to the folder "
            "that holds ComfyUI's main.py)"
        )
    return main


def comfyui(start: Start) -> Program:
    """ComfyUI; raises ConfigError for flags ComfyUI would refuse."""
    settings = start.settings
    extra_args = strip_separator(start.extra)
    check_flags(
        [
            ("COMFYUI_ARGS", settings.comfyui_args),
            ("the start command's flags", start.vram_flags),
            ("the arguments after --", extra_args),
        ]
    )
    return Program(
        name=COMFYUI,
        argv=(
            start.env_binary,
            DEFAULT_SIGNALS,
            start.python,
            "main.py",
            "--port",
            str(settings.comfyui_port),
            EXTRA_MODEL_PATHS_FLAG,
            str(settings.cache_yaml_path),
            *settings.comfyui_args,
            *start.vram_flags,
            *extra_args,
        ),
        directory=settings.comfyui_path,
        priority=300,
        autostart=start.comfyui_installed,
        autorestart=True,
        start_seconds=5,
        stop_signal="INT",
        stop_seconds=settings.comfyui_stop_seconds,
        environment={"PYTHONUNBUFFERED": "1", **start.comfyui_environment},
        log_max_bytes="10MB",
        log_backups=3,
        comment="ComfyUI stops cleanly only on SIGINT.  Early crashes are retried by supervisord "
        "(startsecs, startretries, growing delay); once it gives up (FATAL), comfy-init starts "
        "it again after COMFYUI_RESTART_BACKOFF seconds, doubling up to ten times that.",
    )


def metrics(start: Start) -> Program | None:
    """The metrics sidecar, unless METRICS=0."""
    if not start.settings.metrics:
        return None
    return Program(
        name="metrics",
        argv=own_command(start, "metrics"),
        directory=Path("/"),
        priority=200,
        autorestart=True,
        start_seconds=2,
        start_retries=10,
        stop_seconds=2,
    )


def warmup(start: Start) -> Program | None:
    """The warmup beside a running ComfyUI (WARMUP_MODE=background), run once."""
    if not start.background_warmup:
        return None
    return Program(
        name="warmup",
        # ComfyUI already runs on the extra_model_paths.yaml written at start: copy only.
        argv=own_command(start, "warmup", "--copy-only"),
        directory=Path("/"),
        priority=100,
        autorestart=False,
        start_seconds=0,
        exit_codes=WARMUP_EXIT_CODES,
        stop_seconds=3,
        comment="One-shot: warms the cache beside a running ComfyUI; each copy appears "
        "atomically and the cache is first in ComfyUI's search order, so models switch to it as "
        "they land.",
    )


def sshd(start: Start) -> Program | None:
    """SSH into the pod (RunPod's PUBLIC_KEY convention), when it runs."""
    if start.sshd is None:
        return None
    return Program(
        name="sshd",
        argv=tuple(ssh.sshd_argv(start.sshd)),
        directory=Path("/"),
        priority=50,
        autorestart=True,
        start_seconds=1,
        stop_seconds=2,
        comment="SSH (PUBLIC_KEY): started first and stopped last, so a session sees ComfyUI "
        "stop; keys and host keys are set up by comfy-init before supervisord starts.",
    )


def jupyter(start: Start) -> Program | None:
    """JupyterLab on 8888 rooted at the volume (JUPYTER_PASSWORD), when it runs."""
    if start.jupyter_lab is None:
        return None
    return Program(
        name="jupyter",
        argv=tuple(services.jupyter_argv(start.jupyter_lab, start.settings.comfyui_path.parent)),
        directory=Path("/"),
        priority=60,
        autorestart=True,
        start_seconds=2,
        stop_seconds=2,
        environment={
            "PYTHONUNBUFFERED": "1",
            **services.jupyter_environment(start.settings.jupyter_password),
        },
    )


def post_start(start: Start) -> Program | None:
    """/post_start.sh once ComfyUI answers (RunPod's hook), when the file exists."""
    if not start.post_start:
        return None
    return Program(
        name="post_start",
        argv=own_command(start, "hook", "post-start"),
        directory=Path("/"),
        priority=250,
        autorestart=False,
        start_seconds=0,
        stop_seconds=3,
        comment="One-shot: waits until ComfyUI answers, runs /post_start.sh (HOOK_TIMEOUT), "
        "exits 0 whatever the hook did (a failure is logged).",
    )


# Every program comfy-init may run, in the config's order; a new program is one entry.
PROGRAMS: tuple[Callable[[Start], Program | None], ...] = (
    comfyui,
    metrics,
    warmup,
    sshd,
    jupyter,
    post_start,
)


def for_start(start: Start) -> list[Program]:
    """The programs of this start (an entry may leave itself out)."""
    return [p for p in (make(start) for make in PROGRAMS) if p is not None]


def own_command(start: Start, *args: str) -> tuple[str, ...]:
    """A command line that runs comfy-init itself."""
    return (start.env_binary, DEFAULT_SIGNALS, start.own_python, "-m", "comfy_init", *args)
