"""Prepare and describe the supervisord run: config for the settings, files, command line.

``build_config`` is the pure path from settings to the config text; ``install`` creates the
runtime directories (root-only), checks the text with supervisord's own parser (which wants
those directories to exist) and writes it atomically; ``argv`` is the command PID 1 spawns.
Spawning, waiting and stopping belong to ``comfy_init.pid1``.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from comfy_init import logs
from comfy_init.errors import EnvironmentMissing
from comfy_init.settings import Settings
from comfy_init.supervisord import programs, render
from comfy_init.warmup.report import write_atomic

log = logs.get_logger("supervisord")

METRICS_STOP_SECONDS = 2
WARMUP_STOP_SECONDS = 3


@dataclass(frozen=True)
class Plan:
    """Everything decided before supervisord starts."""

    text: str  # the rendered config
    template: Path
    comfyui: programs.Program
    program_names: tuple[str, ...]


def build_config(
    settings: Settings,
    *,
    vram_flags: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    background_warmup: bool = False,
    user: str | None = None,
    python: str | None = None,
) -> Plan:
    """Render the config for ``settings``; raise ConfigError/EnvironmentMissing."""
    env_binary = shutil.which("env") or "/usr/bin/env"
    comfyui = programs.comfyui(
        settings,
        python=python or programs.comfyui_python(settings),
        vram_flags=vram_flags,
        extra=extra,
        env_binary=env_binary,
    )
    metrics = (
        programs.comfy_init_program(
            "metrics", ["metrics"], stop_seconds=METRICS_STOP_SECONDS, env_binary=env_binary
        )
        if settings.metrics
        else None
    )
    warmup = (
        programs.comfy_init_program(
            "warmup",
            ["warmup", "--copy-only"],  # ComfyUI already runs on the YAML written at start
            stop_seconds=WARMUP_STOP_SECONDS,
            env_binary=env_binary,
        )
        if background_warmup
        else None
    )
    template = render.template_path(settings)
    ctx = render.context(
        render.Layout.of(settings),
        template=str(template),
        user=("root" if os.geteuid() == 0 else "") if user is None else user,
        comfyui=comfyui,
        metrics=metrics,
        warmup=warmup,
    )
    text = render.render(render.read_template(template), str(template), ctx)
    names = tuple(p.name for p in (comfyui, metrics, warmup) if p is not None)
    return Plan(text=text, template=template, comfyui=comfyui, program_names=names)


def install(settings: Settings, plan: Plan) -> Path:
    """Create the run and log directories (root-only), check the config, write it atomically."""
    layout = render.Layout.of(settings)
    try:
        layout.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(layout.run_dir, 0o700)
        layout.log_dir.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise EnvironmentMissing(
            f"supervisord files: cannot create {exc.filename or layout.run_dir}: {exc.strerror} "
            "(make RUN_DIR writable)"
        ) from None
    render.validate(plan.text, str(plan.template), settings.supervisord_conf)
    try:
        write_atomic(settings.supervisord_conf, plan.text, mode=0o600)
    except OSError as exc:
        raise EnvironmentMissing(
            f"supervisord config SUPERVISORD_CONF={str(settings.supervisord_conf)!r}: cannot be "
            f"written: {exc.strerror} (make its folder writable or set SUPERVISORD_CONF)"
        ) from None
    log.info(
        "supervisord_config_written",
        path=str(settings.supervisord_conf),
        template=str(plan.template),
        programs=",".join(plan.program_names),
    )
    return settings.supervisord_conf


def binary() -> str:
    """supervisord from comfy-init's own environment, else from PATH."""
    beside = Path(sys.executable).parent / "supervisord"
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("supervisord")
    if found is None:
        raise EnvironmentMissing(
            f"supervisord: not found beside {sys.executable} nor on PATH "
            "(install comfy-init with its dependencies: pip install comfy-init)"
        )
    return found


def argv(settings: Settings) -> list[str]:
    return [binary(), "--nodaemon", "--configuration", str(settings.supervisord_conf)]
