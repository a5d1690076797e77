"""Every environment variable comfy-init reads, each declared once.

An ``EnvVar`` carries the variable's name, the ``Settings`` field it sets, its kind (parser,
range and the words for them, ``env_values``), its typed default and its meaning.
``settings.from_env`` loops over ``ENV_VARS``; the README's "Configuration" table is
``readme_table()`` (``tests/test_docs.py`` keeps them equal; ``UPDATE_README=1`` rewrites
the README's copy).  A new variable is one entry here and its field in ``Settings``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from comfy_init import logs
from comfy_init.env_values import (
    AbsolutePath,
    Choice,
    Flag,
    Kind,
    OptionalPath,
    Seconds,
    ShellArgs,
    Text,
    Whole,
    markdown,
)

T = TypeVar("T")

MIB = 1024 * 1024
DAY = 86400.0
# Name of the warmup config file, looked up as WARMUP_CONFIG's meaning says.
WARMUP_CONFIG_NAME = "warmup_models.conf"
DIRECTORY = AbsolutePath("a directory path")
PORT = Whole(1, 65535, noun="a port number")


@dataclass(frozen=True)
class EnvVar(Generic[T]):
    name: str
    field: str  # the Settings field it sets
    kind: Kind[T]
    default: T  # in the variable's own unit, as the user writes it
    meaning: str  # Markdown, one line of the README table

    @property
    def default_text(self) -> str:
        return self.kind.show(self.default)

    def read(self, environ: Mapping[str, str]) -> Any:
        """The field's value; ValueError if the variable is set to something its kind refuses."""
        text = environ.get(self.name)
        return self.kind.setting(self.default if text is None else self.kind.parse(text))


# Order is the README table's order.
ENV_VARS: tuple[EnvVar[Any], ...] = (
    EnvVar(
        "COMFYUI_PATH",
        "comfyui_path",
        DIRECTORY,
        Path("/workspace/ComfyUI"),
        "ComfyUI install on the volume; models are read from `$COMFYUI_PATH/models` and the "
        "folders its `extra_model_paths.yaml` names; its parent is the volume root",
    ),
    EnvVar(
        "CACHE_PATH",
        "cache_path",
        DIRECTORY,
        Path("/root/fast_cache"),
        "cache root on local NVMe; `<type>/<file>` mirrors the models tree",
    ),
    EnvVar(
        "WARMUP_CONFIG",
        "warmup_config",
        Text("a file name or path"),
        WARMUP_CONFIG_NAME,
        "warmup config: an absolute path, or a file name looked up in `$COMFYUI_PATH`, "
        "then the volume root (parent of `$COMFYUI_PATH`), then `$COMFY_INIT_CONFIG_DIR`",
    ),
    EnvVar(
        "COMFY_INIT_CONFIG_DIR",
        "config_dir",
        DIRECTORY,
        Path("/etc/comfy-init"),
        "where the image keeps its own `warmup_models.conf` (the last place looked)",
    ),
    EnvVar(
        "SKIP_WARMUP",
        "skip_warmup",
        Flag(),
        False,
        "`1` skips warmup at start (same as `start --skip-warmup`)",
    ),
    EnvVar(
        "WARMUP_MODE",
        "warmup_mode",
        Choice(("blocking", "background")),
        "blocking",
        "`blocking`: warm, then start ComfyUI; `background`: start ComfyUI at once and warm "
        "beside it (models switch to the cache as each copy lands)",
    ),
    EnvVar(
        "WARMUP_STREAMS",
        "warmup_streams",
        Whole(1, 256),
        8,
        "concurrent read streams while copying (files and byte ranges of large files)",
    ),
    EnvVar(
        "WARMUP_CHUNK_MB",
        "warmup_chunk_bytes",
        Whole(1, 4096, unit="MiB", scale=MIB),
        64,
        "size of one byte range read by one stream, in MiB",
    ),
    EnvVar(
        "WARMUP_MAX_MBPS",
        "warmup_max_bytes_per_second",
        Whole(0, 10**6, unit="MB/s", scale=1_000_000),
        0,
        "cap on the warmup's total read rate in MB/s, to spare a volume shared by many "
        "pods; `0`: no cap",
    ),
    EnvVar(
        "CACHE_RESERVE_MB",
        "cache_reserve_bytes",
        Whole(0, 10**9, unit="MiB", scale=MIB),
        1024,
        "free space always left on the cache filesystem, in MiB; a file that would cut into "
        "it is skipped",
    ),
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
    EnvVar("LOG_LEVEL", "log_level", Choice(logs.LEVELS), "info", "how much is logged"),
    EnvVar(
        "LOG_FORMAT",
        "log_format",
        Choice(logs.FORMATS),
        "auto",
        "`auto`: console on a terminal, else JSON",
    ),
)

# The defaults as the variables' text (what an unset variable stands for).
DEFAULTS: dict[str, str] = {v.name: v.default_text for v in ENV_VARS}

README_HEADER = ("| variable | default | accepts | meaning |", "|---|---|---|---|")


def readme_row(var: EnvVar[Any]) -> str:
    default = markdown(var.default_text) if var.default_text else "(empty)"
    accepts = var.kind.accepts(markdown)
    return f"| `{var.name}` | {default} | {accepts} | {var.meaning} |"


def readme_table() -> str:
    """The README's "Configuration" table, one row per variable."""
    return "\n".join([*README_HEADER, *(readme_row(v) for v in ENV_VARS)]) + "\n"
