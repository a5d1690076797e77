"""The variables of the models: where they are read from (the volume, ComfyUI's folders),
where they are warmed to (the cache), the warmup config, how copying goes, and ``@auto``.
In README order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from comfy_init.env_values import DIRECTORY, MIB, Choice, EnvVar, Flag, OptionalPath, Text, Whole

# Name of the warmup config file, looked up as WARMUP_CONFIG's meaning says.
WARMUP_CONFIG_NAME = "warmup_models.conf"

VARS: tuple[EnvVar[Any], ...] = (
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
        "WARMUP_AUTO_DAYS",
        "warmup_auto_days",
        Whole(1, 3650, unit="days"),
        14,
        "`@auto` warms the models the pods of this volume opened in this many days, most used "
        "first; journals of pods silent for longer are removed",
    ),
    EnvVar(
        "WARMUP_AUTO_MAX_MB",
        "warmup_auto_max_bytes",
        Whole(0, 10**9, unit="MiB", scale=MIB),
        0,
        "cap on the total size of the models `@auto` warms, in MiB; `0`: no cap but the "
        "cache's free space less `CACHE_RESERVE_MB`",
    ),
    EnvVar(
        "USAGE_DIR",
        "usage_dir",
        OptionalPath("a directory path"),
        None,
        "where each pod's sidecar records the models ComfyUI opens (the journals `@auto` "
        "reads); empty: `$COMFYUI_PATH/.comfy-init/usage` on the volume",
    ),
)
