"""The variables of the processes: ComfyUI, supervisord, the metrics sidecar (watchdog and
write-back) and the logs.  In README order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from comfy_init import logs
from comfy_init.env_values import (
    DAY,
    DIRECTORY,
    PORT,
    AbsolutePath,
    Choice,
    EnvVar,
    Flag,
    OptionalPath,
    Seconds,
    ShellArgs,
    Text,
    Whole,
)

VARS: tuple[EnvVar[Any], ...] = (
    EnvVar(
        "COMFYUI_ARGS",
        "comfyui_args",
        ShellArgs(),
        ("--listen", "--disable-metadata"),
        "extra ComfyUI arguments (shell-quoted), used by `start`",
    ),
    EnvVar("COMFYUI_PORT", "comfyui_port", PORT, 8188, "ComfyUI's HTTP port (`--port`)"),
    EnvVar(
        "COMFYUI_PYTHON",
        "comfyui_python",
        Text("a command name or path, or nothing", may_be_empty=True),
        "",
        "interpreter for ComfyUI; empty: `$COMFYUI_PATH/venv/bin/python`, then "
        "`$COMFYUI_PATH/.venv/bin/python`, then `python3`",
    ),
    EnvVar(
        "COMFYUI_STOP_SECONDS",
        "comfyui_stop_seconds",
        Whole(1, 3600, unit="seconds"),
        6,
        "grace between SIGINT and SIGKILL when ComfyUI is stopped",
    ),
    EnvVar(
        "COMFYUI_RESTART_BACKOFF",
        "comfyui_restart_backoff",
        Seconds(0.1, 3600),
        30.0,
        "seconds before ComfyUI is started again once supervisord gave up on it (crash loop); "
        "doubles at each give-up up to ten times this",
    ),
    EnvVar(
        "RUN_DIR",
        "run_dir",
        DIRECTORY,
        Path("/run/comfy-init"),
        "runtime files on local disk: warmup report and lock, generated YAML, supervisord "
        "socket, pid file and program logs",
    ),
    EnvVar(
        "SUPERVISORD_CONF",
        "supervisord_conf",
        AbsolutePath("a file path"),
        Path("/etc/supervisord.conf"),
        "where the rendered supervisord config is written (where `supervisorctl` finds it)",
    ),
    EnvVar(
        "SUPERVISORD_TEMPLATE",
        "supervisord_template",
        OptionalPath("a file path"),
        None,
        "your own `supervisord.conf.j2`; empty: the one shipped with comfy-init",
    ),
    EnvVar(
        "METRICS",
        "metrics",
        Flag(),
        True,
        "`0` leaves the metrics sidecar out (ComfyUI runs alone)",
    ),
    EnvVar(
        "METRICS_PORT",
        "metrics_port",
        PORT,
        9188,
        "port of the metrics sidecar (`/metrics`, `/healthz`, `/readyz`)",
    ),
    EnvVar(
        "METRICS_ADDR",
        "metrics_addr",
        Text("an IP address to bind"),
        # Prometheus scrapes the pod from outside, so the sidecar binds every interface.
        "0.0.0.0",  # noqa: S104
        "bind address of the metrics sidecar",
    ),
    EnvVar(
        "METRICS_WEB_CONFIG",
        "metrics_web_config",
        OptionalPath("a file path"),
        None,
        "web config file of the metrics port in Prometheus' exporter-toolkit format "
        "(`basic_auth_users`, `tls_server_config`); empty: plain HTTP, no password",
    ),
    EnvVar(
        "METRICS_READ_TIMEOUT",
        "metrics_read_timeout",
        Seconds(0.1, 300),
        5.0,
        "seconds a client of the metrics port has to send its request (TLS handshake "
        "included) before it is dropped",
    ),
    EnvVar(
        "METRICS_MAX_REQUESTS",
        "metrics_max_requests",
        Whole(1, 10000),
        40,
        "requests the metrics port serves at once; beyond that it answers 503",
    ),
    EnvVar(
        "WATCHDOG",
        "watchdog",
        Flag(),
        True,
        "`0` turns off the sidecar's restart of a ComfyUI that runs but stopped answering HTTP",
    ),
    EnvVar(
        "WATCHDOG_INTERVAL",
        "watchdog_interval",
        Seconds(0.05, 3600),
        10.0,
        "seconds between the watchdog's HTTP probes",
    ),
    EnvVar(
        "WATCHDOG_FAILURES",
        "watchdog_failures",
        Whole(1, 1000),
        6,
        "consecutive failed probes before the watchdog restarts ComfyUI",
    ),
    EnvVar(
        "WATCHDOG_GRACE",
        "watchdog_grace",
        Seconds(0, DAY),
        600.0,
        "seconds after ComfyUI (re)starts before the watchdog judges it",
    ),
    EnvVar(
        "WATCHDOG_BUSY_LIMIT",
        "watchdog_busy_limit",
        Seconds(0, 7 * DAY),
        1800.0,
        "while the queue shows a running job, the watchdog waits up to this many seconds of "
        "silence before it restarts ComfyUI",
    ),
    EnvVar(
        "WRITEBACK",
        "writeback",
        Flag(),
        True,
        "`0` turns off copying models that appear in the cache (downloads) back to the volume",
    ),
    EnvVar(
        "READAHEAD", "readahead", Flag(), True, "`0` turns off the readahead of ComfyUI's start"
    ),
    EnvVar("LOG_LEVEL", "log_level", Choice(logs.LEVELS), "info", "how much is logged"),
    EnvVar(
        "LOG_FORMAT",
        "log_format",
        Choice(logs.FORMATS),
        "auto",
        "`auto`: console on a terminal, else JSON",
    ),
)
