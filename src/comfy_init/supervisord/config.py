"""supervisord's config for the settings, its runtime directories, and its command line.

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
from comfy_init.files.durable import write_atomic
from comfy_init.settings import Settings
from comfy_init.supervisord import programs, render

log = logs.get_logger("supervisord")


@dataclass(frozen=True)
class SupervisordConfig:
    """Everything decided before supervisord starts."""

    text: str  # the rendered config
    template: Path
    programs: tuple[programs.Program, ...]

    @property
    def program_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.programs)


def build_config(
    settings: Settings,
    *,
    vram_flags: tuple[str, ...] = (),
    extra: tuple[str, ...] = (),
    background_warmup: bool = False,
    user: str | None = None,
    python: str | None = None,
    comfyui_installed: bool = True,
    sshd: str | None = None,
    jupyter_lab: str | None = None,
    post_start: bool = False,
) -> SupervisordConfig:
    """Render the config for ``settings``; raise ConfigError/EnvironmentMissing.

    While ComfyUI is not installed its interpreter cannot be looked for yet: the config is
    rendered again once it is (``boot``)."""
    if python is None:
        python = (
            programs.comfyui_python(settings)
            if comfyui_installed
            else settings.comfyui_python or "python3"
        )
    start = programs.Start(
        settings,
        python=python,
        vram_flags=vram_flags,
        extra=extra,
        background_warmup=background_warmup,
        env_binary=shutil.which("env") or "/usr/bin/env",
        comfyui_installed=comfyui_installed,
        sshd=sshd,
        jupyter_lab=jupyter_lab,
        post_start=post_start,
    )
    chosen = programs.for_start(start)
    template = render.template_path(settings)
    ctx = render.context(
        settings,
        template=str(template),
        user=("root" if os.geteuid() == 0 else "") if user is None else user,
        programs=chosen,
    )
    text = render.render(render.read_template(template), str(template), ctx)
    return SupervisordConfig(text=text, template=template, programs=tuple(chosen))


def install(settings: Settings, config: SupervisordConfig) -> Path:
    """Create the run and log directories (root-only), check the config, write it atomically."""
    try:
        settings.run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(settings.run_dir, 0o700)
        settings.log_dir.mkdir(mode=0o700, exist_ok=True)
    except OSError as exc:
        raise EnvironmentMissing(
            f"supervisord files: cannot create {exc.filename or settings.run_dir}: {exc.strerror} "
            "(make RUN_DIR writable)"
        ) from None
    render.validate(config.text, str(config.template), settings.supervisord_conf)
    try:
        write_atomic(settings.supervisord_conf, config.text, mode=0o600)
    except OSError as exc:
        raise EnvironmentMissing(
            f"supervisord config SUPERVISORD_CONF={str(settings.supervisord_conf)!r}: cannot be "
            f"written: {exc.strerror} (make its folder writable or set SUPERVISORD_CONF)"
        ) from None
    log.info(
        "supervisord_config_written",
        path=str(settings.supervisord_conf),
        template=str(config.template),
        programs=",".join(config.program_names),
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
