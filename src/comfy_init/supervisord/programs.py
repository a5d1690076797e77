"""What supervisord runs: the ComfyUI command line and the programs beside it (pure).

ComfyUI is started as ``env --default-signal=PIPE,XFSZ <python> main.py --port P
--extra-model-paths-config <our yaml> $COMFYUI_ARGS [--highvram|--lowvram] [-- args]`` in
``$COMFYUI_PATH``: supervisord leaves SIGPIPE and SIGXFSZ ignored in its children, coreutils
``env`` puts them back to default before ComfyUI's interpreter starts.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from comfy_init.errors import ConfigError, EnvironmentMissing
from comfy_init.settings import Settings

# ComfyUI's mutually exclusive VRAM-mode flags: given two, ComfyUI exits 2 at start.
VRAM_FLAGS = ("--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram", "--cpu")
# Flags comfy-init sets itself from a variable; a second copy elsewhere would silently win.
OWNED_FLAGS = {"--port": "COMFYUI_PORT"}
DEFAULT_SIGNALS = "--default-signal=PIPE,XFSZ"
EXTRA_MODEL_PATHS_FLAG = "--extra-model-paths-config"


@dataclass(frozen=True)
class Program:
    """One ``[program:x]`` section's variable parts; the template holds the fixed ones."""

    name: str
    argv: tuple[str, ...]
    directory: Path
    stop_seconds: int
    environment: dict[str, str] = field(default_factory=dict)


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


def comfyui(
    settings: Settings,
    *,
    python: str,
    vram_flags: Sequence[str] = (),
    extra: Sequence[str] = (),
    env_binary: str = "/usr/bin/env",
) -> Program:
    """The ``comfyui`` program; raises ConfigError for flags ComfyUI would refuse."""
    extra_args = strip_separator(extra)
    check_flags(
        [
            ("COMFYUI_ARGS", settings.comfyui_args),
            ("the start command's flags", vram_flags),
            ("the arguments after --", extra_args),
        ]
    )
    argv = (
        env_binary,
        DEFAULT_SIGNALS,
        python,
        "main.py",
        "--port",
        str(settings.comfyui_port),
        EXTRA_MODEL_PATHS_FLAG,
        str(settings.cache_yaml_path),
        *settings.comfyui_args,
        *vram_flags,
        *extra_args,
    )
    return Program(
        name="comfyui",
        argv=argv,
        directory=settings.comfyui_path,
        stop_seconds=settings.comfyui_stop_seconds,
        environment={"PYTHONUNBUFFERED": "1"},
    )


def comfy_init_program(
    name: str,
    args: Sequence[str],
    *,
    stop_seconds: int,
    env_binary: str = "/usr/bin/env",
    python: str = sys.executable,
) -> Program:
    """A program that runs comfy-init itself (by default with PID 1's interpreter)."""
    return Program(
        name=name,
        argv=(env_binary, DEFAULT_SIGNALS, python, "-m", "comfy_init", *args),
        directory=Path("/"),
        stop_seconds=stop_seconds,
        environment={"PYTHONUNBUFFERED": "1"},
    )
