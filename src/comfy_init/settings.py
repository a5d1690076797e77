"""Settings: one frozen dataclass built once from the environment (and CLI flags), passed
explicitly.  Every bad variable is collected and reported together, each naming the variable
and its value.

The table in the README ("Configuration") is kept in step with ``ENV_VARS`` by a test.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from comfy_init import logs
from comfy_init.errors import ConfigError

T = TypeVar("T")

WarmupMode = Literal["blocking", "background"]

# Name of the warmup config file and the places a bare name is looked up, first match wins.
WARMUP_CONFIG_NAME = "warmup_models.conf"


@dataclass(frozen=True)
class EnvVar:
    name: str
    default: str
    meaning: str


# Every variable comfy-init reads.  Order is the README table's order.
ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar(
        "COMFYUI_PATH",
        "/workspace/ComfyUI",
        "ComfyUI install on the volume; models are read from `$COMFYUI_PATH/models`",
    ),
    EnvVar(
        "CACHE_PATH",
        "/root/fast_cache",
        "cache root on local NVMe; `<type>/<file>` mirrors the models tree",
    ),
    EnvVar(
        "WARMUP_CONFIG",
        WARMUP_CONFIG_NAME,
        "warmup config: an absolute path, or a file name looked up in `$COMFYUI_PATH`, "
        "then the volume root (parent of `$COMFYUI_PATH`), then `$COMFY_INIT_CONFIG_DIR`",
    ),
    EnvVar(
        "COMFY_INIT_CONFIG_DIR",
        "/etc/comfy-init",
        "where the image keeps its own `warmup_models.conf` (the last place looked)",
    ),
    EnvVar("SKIP_WARMUP", "0", "`1` skips warmup at start (same as `start --skip-warmup`)"),
    EnvVar(
        "WARMUP_MODE",
        "blocking",
        "`blocking`: warm, then start ComfyUI; `background`: start ComfyUI at once and warm "
        "beside it (models switch to the cache as each copy lands)",
    ),
    EnvVar(
        "WARMUP_STREAMS",
        "8",
        "concurrent read streams while copying (files and byte ranges of large files)",
    ),
    EnvVar("WARMUP_CHUNK_MB", "64", "size of one byte range read by one stream, in MiB"),
    EnvVar(
        "WARMUP_MAX_MBPS",
        "0",
        "cap on the warmup's total read rate in MB/s, to spare a volume shared by many "
        "pods; `0`: no cap",
    ),
    EnvVar(
        "CACHE_RESERVE_MB",
        "1024",
        "free space always left on the cache filesystem, in MiB; a file that would cut into "
        "it is skipped",
    ),
    EnvVar(
        "COMFYUI_ARGS",
        "--listen --disable-metadata",
        "extra ComfyUI arguments (shell-quoted), used by `start`",
    ),
    EnvVar("COMFYUI_PORT", "8188", "ComfyUI's HTTP port (`--port`)"),
    EnvVar(
        "COMFYUI_PYTHON",
        "",
        "interpreter for ComfyUI; empty: `$COMFYUI_PATH/venv/bin/python`, then "
        "`$COMFYUI_PATH/.venv/bin/python`, then `python3`",
    ),
    EnvVar("COMFYUI_STOP_SECONDS", "6", "grace between SIGINT and SIGKILL when ComfyUI is stopped"),
    EnvVar(
        "COMFYUI_RESTART_BACKOFF",
        "30",
        "seconds before ComfyUI is started again once supervisord gave up on it (crash loop); "
        "doubles at each give-up up to ten times this",
    ),
    EnvVar(
        "RUN_DIR",
        "/run/comfy-init",
        "runtime state: warmup report, generated YAML, supervisord socket",
    ),
    EnvVar(
        "SUPERVISORD_CONF",
        "/etc/supervisord.conf",
        "where the rendered supervisord config is written (where `supervisorctl` finds it)",
    ),
    EnvVar(
        "SUPERVISORD_TEMPLATE",
        "",
        "your own `supervisord.conf.j2`; empty: the one shipped with comfy-init",
    ),
    EnvVar("METRICS", "1", "`0` leaves the metrics sidecar out (ComfyUI runs alone)"),
    EnvVar(
        "METRICS_PORT", "9188", "port of the metrics sidecar (`/metrics`, `/healthz`, `/readyz`)"
    ),
    # Prometheus scrapes the pod from outside, so the sidecar binds every interface.
    EnvVar("METRICS_ADDR", "0.0.0.0", "bind address of the metrics sidecar"),  # noqa: S104
    EnvVar(
        "METRICS_WEB_CONFIG",
        "",
        "web config file of the metrics port in Prometheus' exporter-toolkit format "
        "(`basic_auth_users`, `tls_server_config`); empty: plain HTTP, no password",
    ),
    EnvVar(
        "METRICS_READ_TIMEOUT",
        "5",
        "seconds a client of the metrics port has to send its request (TLS handshake "
        "included) before it is dropped",
    ),
    EnvVar(
        "METRICS_MAX_REQUESTS",
        "40",
        "requests the metrics port serves at once; beyond that it answers 503",
    ),
    EnvVar(
        "WATCHDOG",
        "1",
        "`0` turns off the sidecar's restart of a ComfyUI that runs but stopped answering HTTP",
    ),
    EnvVar("WATCHDOG_INTERVAL", "10", "seconds between the watchdog's HTTP probes"),
    EnvVar(
        "WATCHDOG_FAILURES", "6", "consecutive failed probes before the watchdog restarts ComfyUI"
    ),
    EnvVar(
        "WATCHDOG_GRACE", "600", "seconds after ComfyUI (re)starts before the watchdog judges it"
    ),
    EnvVar(
        "WATCHDOG_BUSY_LIMIT",
        "1800",
        "while the queue shows a running job, the watchdog waits up to this many seconds of "
        "silence before it restarts ComfyUI",
    ),
    EnvVar(
        "WRITEBACK",
        "1",
        "`0` turns off copying models that appear in the cache (downloads) back to the volume",
    ),
    EnvVar("LOG_LEVEL", "info", "`debug`, `info`, `warning` or `error`"),
    EnvVar("LOG_FORMAT", "auto", "`json`, `console`, or `auto` (console on a terminal, else JSON)"),
)

DEFAULTS: dict[str, str] = {v.name: v.default for v in ENV_VARS}


@dataclass(frozen=True)
class Settings:
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
    log_level: str
    log_format: str

    # Derived paths: one place decides where things live.
    @property
    def models_path(self) -> Path:
        return self.comfyui_path / "models"

    @property
    def report_path(self) -> Path:
        """The JSON report of the last (or running) warmup."""
        return self.run_dir / "warmup-report.json"

    @property
    def cache_yaml_path(self) -> Path:
        """The extra_model_paths YAML we generate; never the user's own file."""
        return self.run_dir / "extra_model_paths.yaml"

    @property
    def supervisord_socket(self) -> Path:
        return self.run_dir / "supervisord.sock"

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

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


class _Reader:
    """Reads variables, collecting every problem instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.problems: list[str] = []

    def raw(self, name: str) -> str:
        return self.environ.get(name, DEFAULTS[name])

    def get(self, name: str, parse: Callable[[str], T], fallback: T, hint: str) -> T:
        value = self.raw(name)
        try:
            return parse(value)
        except (ValueError, TypeError):
            self.problems.append(f"{name}={value!r} is invalid: {hint}")
            return fallback


def _bool(value: str) -> bool:
    low = value.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(value)


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        n = int(value.strip())
        if not lo <= n <= hi:
            raise ValueError(value)
        return n

    return parse


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        x = float(value.strip())
        if not lo <= x <= hi:
            raise ValueError(value)
        return x

    return parse


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        v = value.strip().lower()
        if v not in options:
            raise ValueError(value)
        return v

    return parse


def _abs_path(value: str) -> Path:
    if not value.strip():
        raise ValueError(value)
    return Path(value.strip()).expanduser().absolute()


def _optional_path(value: str) -> Path | None:
    return _abs_path(value) if value.strip() else None


def _args(value: str) -> tuple[str, ...]:
    return tuple(shlex.split(value))


def from_env(environ: Mapping[str, str]) -> Settings:
    """Build settings from ``environ``; raise ConfigError listing every bad variable."""
    r = _Reader(environ)
    mib = 1024 * 1024
    settings = Settings(
        comfyui_path=r.get("COMFYUI_PATH", _abs_path, Path("/"), "expected a directory path"),
        cache_path=r.get("CACHE_PATH", _abs_path, Path("/"), "expected a directory path"),
        warmup_config=r.get("WARMUP_CONFIG", _nonempty, "", "expected a file name or path"),
        config_dir=r.get(
            "COMFY_INIT_CONFIG_DIR", _abs_path, Path("/"), "expected a directory path"
        ),
        skip_warmup=r.get("SKIP_WARMUP", _bool, False, "expected 0 or 1"),
        warmup_mode=r.get(
            "WARMUP_MODE",
            _choice("blocking", "background"),  # type: ignore[arg-type]
            "blocking",
            "expected 'blocking' or 'background'",
        ),
        warmup_streams=r.get(
            "WARMUP_STREAMS", _int_range(1, 256), 8, "expected a whole number from 1 to 256"
        ),
        warmup_chunk_bytes=r.get(
            "WARMUP_CHUNK_MB",
            _int_range(1, 4096),
            64,
            "expected a whole number of MiB from 1 to 4096",
        )
        * mib,
        warmup_max_bytes_per_second=r.get(
            "WARMUP_MAX_MBPS",
            _int_range(0, 10**6),
            0,
            "expected a whole number of MB/s, 0 for no cap",
        )
        * 1_000_000,
        cache_reserve_bytes=r.get(
            "CACHE_RESERVE_MB",
            _int_range(0, 10**9),
            1024,
            "expected a whole number of MiB, 0 or more",
        )
        * mib,
        comfyui_args=r.get("COMFYUI_ARGS", _args, (), "expected shell-quoted arguments"),
        comfyui_port=r.get(
            "COMFYUI_PORT", _int_range(1, 65535), 8188, "expected a port number from 1 to 65535"
        ),
        comfyui_python=r.raw("COMFYUI_PYTHON").strip(),
        comfyui_stop_seconds=r.get(
            "COMFYUI_STOP_SECONDS",
            _int_range(1, 3600),
            6,
            "expected a whole number of seconds from 1 to 3600",
        ),
        comfyui_restart_backoff=r.get(
            "COMFYUI_RESTART_BACKOFF",
            _float_range(0.1, 3600),
            30.0,
            "expected seconds from 0.1 to 3600",
        ),
        run_dir=r.get("RUN_DIR", _abs_path, Path("/"), "expected a directory path"),
        supervisord_conf=r.get("SUPERVISORD_CONF", _abs_path, Path("/"), "expected a file path"),
        supervisord_template=r.get(
            "SUPERVISORD_TEMPLATE", _optional_path, None, "expected a file path or nothing"
        ),
        metrics=r.get("METRICS", _bool, True, "expected 0 or 1"),
        metrics_port=r.get(
            "METRICS_PORT", _int_range(1, 65535), 9188, "expected a port number from 1 to 65535"
        ),
        metrics_addr=r.get(
            "METRICS_ADDR",
            _nonempty,
            "0.0.0.0",  # noqa: S104
            "expected an IP address to bind",
        ),
        metrics_web_config=r.get(
            "METRICS_WEB_CONFIG", _optional_path, None, "expected a file path or nothing"
        ),
        metrics_read_timeout=r.get(
            "METRICS_READ_TIMEOUT",
            _float_range(0.1, 300),
            5.0,
            "expected seconds from 0.1 to 300",
        ),
        metrics_max_requests=r.get(
            "METRICS_MAX_REQUESTS",
            _int_range(1, 10000),
            40,
            "expected a whole number from 1 to 10000",
        ),
        watchdog=r.get("WATCHDOG", _bool, True, "expected 0 or 1"),
        watchdog_interval=r.get(
            "WATCHDOG_INTERVAL",
            _float_range(0.05, 3600),
            10.0,
            "expected seconds from 0.05 to 3600",
        ),
        watchdog_failures=r.get(
            "WATCHDOG_FAILURES", _int_range(1, 1000), 6, "expected a whole number from 1 to 1000"
        ),
        watchdog_grace=r.get(
            "WATCHDOG_GRACE", _float_range(0, 86400), 600.0, "expected seconds from 0 to 86400"
        ),
        watchdog_busy_limit=r.get(
            "WATCHDOG_BUSY_LIMIT", _float_range(0, 86400 * 7), 1800.0, "expected seconds, 0 or more"
        ),
        writeback=r.get("WRITEBACK", _bool, True, "expected 0 or 1"),
        log_level=r.get(
            "LOG_LEVEL", _choice(*logs.LEVELS), "info", "expected one of " + ", ".join(logs.LEVELS)
        ),
        log_format=r.get(
            "LOG_FORMAT",
            _choice(*logs.FORMATS),
            "auto",
            "expected one of " + ", ".join(logs.FORMATS),
        ),
    )
    if r.problems:
        raise ConfigError([f"environment: {p}" for p in r.problems])
    return settings


def _nonempty(value: str) -> str:
    if not value.strip():
        raise ValueError(value)
    return value.strip()
