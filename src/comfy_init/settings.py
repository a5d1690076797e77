"""Settings: one frozen dataclass built once from the environment, passed explicitly.

Each variable is declared once in ``env_vars.ENV_VARS`` (name, field, kind, default, meaning);
``from_env`` reads them all and reports every bad one together, naming the variable and its
value.  Every path under ``RUN_DIR`` is named here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from comfy_init.env_vars import ENV_VARS
from comfy_init.errors import ConfigError

WarmupMode = Literal["blocking", "background"]


@dataclass(frozen=True)
class Settings:
    """Every field is set by one variable of ``env_vars.ENV_VARS`` (a test checks both ways)."""

    comfyui_path: Path
    cache_path: Path
    warmup_config: str
    config_dir: Path
    skip_warmup: bool
    warmup_mode: WarmupMode
    warmup_streams: int
    warmup_chunk_bytes: int
    warmup_max_bytes_per_second: int  # 0: unlimited
    cache_reserve_bytes: int
    warmup_auto_days: int
    warmup_auto_max_bytes: int  # 0: no cap
    usage_dir: Path | None  # None: usage_path's default, on the volume
    comfyui_args: tuple[str, ...]
    comfyui_port: int
    comfyui_python: str
    comfyui_stop_seconds: int
    comfyui_restart_backoff: float
    run_dir: Path
    supervisord_conf: Path
    supervisord_template: Path | None
    metrics: bool
    metrics_port: int
    metrics_addr: str
    metrics_web_config: Path | None
    metrics_read_timeout: float
    metrics_max_requests: int
    watchdog: bool
    watchdog_interval: float
    watchdog_failures: int
    watchdog_grace: float
    watchdog_busy_limit: float
    writeback: bool
    readahead: bool
    log_level: str
    log_format: str
    public_key: str = field(repr=False)
    ssh: str
    jupyter_password: str = field(repr=False)
    jupyter: str
    hook_timeout: float
    runpod_endpoint_id: str

    @property
    def serverless(self) -> bool:
        """A RunPod serverless worker (RunPod sets the endpoint id there only)."""
        return bool(self.runpod_endpoint_id)

    @property
    def models_path(self) -> Path:
        return self.comfyui_path / "models"

    @property
    def user_model_paths_path(self) -> Path:
        """The user's own extra_model_paths.yaml, which ComfyUI always loads: read, never
        written."""
        return self.comfyui_path / "extra_model_paths.yaml"

    @property
    def usage_path(self) -> Path:
        """The folder of the pods' usage journals (on the volume, shared by the fleet)."""
        return self.usage_dir or self.comfyui_path / ".comfy-init" / "usage"

    # Runtime files, all under RUN_DIR (local disk): named here and nowhere else.
    @property
    def report_path(self) -> Path:
        """The JSON report of the last (or running) warmup; the sidecar reads it."""
        return self.run_dir / "warmup-report.json"

    @property
    def warmup_lock_path(self) -> Path:
        """``flock``ed by the running warmup (or ``--clean``); a second one waits."""
        return self.run_dir / "warmup.lock"

    @property
    def cache_yaml_path(self) -> Path:
        """The extra_model_paths YAML we generate; never the user's own file."""
        return self.run_dir / "extra_model_paths.yaml"

    @property
    def supervisord_socket(self) -> Path:
        """supervisord's control socket (supervisorctl, comfy-init, the sidecar)."""
        return self.run_dir / "supervisord.sock"

    @property
    def supervisord_pidfile(self) -> Path:
        return self.run_dir / "supervisord.pid"

    @property
    def log_dir(self) -> Path:
        """Program logs (supervisord's ``childlogdir``); PID 1 relays them to stdout."""
        return self.run_dir / "logs"

    @property
    def readahead_report_path(self) -> Path:
        """What the readahead read and found; the sidecar reads it."""
        return self.run_dir / "readahead-report.json"

    @property
    def readahead_trace_dir(self) -> Path:
        """ComfyUI's processes write what they read here until it answers."""
        return self.run_dir / "readahead-trace"

    def warmup_config_candidates(self) -> list[Path]:
        """Where WARMUP_CONFIG is looked for, in order; a copy on the volume wins."""
        raw = Path(self.warmup_config)
        if raw.is_absolute():
            return [raw]
        return [
            self.comfyui_path / raw,
            self.comfyui_path.parent / raw,
            self.config_dir / raw,
        ]


def from_env(environ: Mapping[str, str]) -> Settings:
    """Build settings from ``environ``; raise ConfigError listing every bad variable."""
    values: dict[str, Any] = {}
    problems: list[str] = []
    for var in ENV_VARS:
        try:
            values[var.field] = var.read(environ)
        except ValueError:
            problems.append(
                f"environment: {var.name}={environ[var.name]!r} is invalid: "
                f"expected {var.kind.accepts()}"
            )
    if problems:
        raise ConfigError(problems)
    return Settings(**values)
