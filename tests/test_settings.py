"""Settings come from the environment; every bad variable is reported at once, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_init import settings
from comfy_init.errors import EXIT_CONFIG, ConfigError


def test_defaults_match_the_documented_table() -> None:
    s = settings.from_env({})
    assert s.comfyui_path == Path("/workspace/ComfyUI")
    assert s.models_path == Path("/workspace/ComfyUI/models")
    assert s.cache_path == Path("/root/fast_cache")
    assert s.run_dir == Path("/run/comfy-init")
    assert s.comfyui_args == ("--listen", "--disable-metadata")
    assert s.comfyui_port == 8188
    assert s.metrics_port == 9188
    assert s.warmup_mode == "blocking"
    assert s.skip_warmup is False
    assert s.supervisord_conf == Path("/etc/supervisord.conf")
    assert s.supervisord_template is None


def test_every_bad_variable_is_reported_together_by_name_and_value() -> None:
    env = {"WARMUP_STREAMS": "many", "COMFYUI_PORT": "70000", "WARMUP_MODE": "lazy"}
    with pytest.raises(ConfigError) as info:
        settings.from_env(env)
    message = str(info.value)
    assert info.value.exit_code == EXIT_CONFIG
    assert "WARMUP_STREAMS='many'" in message
    assert "COMFYUI_PORT='70000'" in message
    assert "WARMUP_MODE='lazy'" in message
    assert len(info.value.problems) == 3


def test_comfyui_args_are_split_like_a_shell_would() -> None:
    s = settings.from_env({"COMFYUI_ARGS": "--listen 0.0.0.0 --preview-method 'auto'"})
    assert s.comfyui_args == ("--listen", "0.0.0.0", "--preview-method", "auto")


def test_unbalanced_quotes_in_comfyui_args_name_the_variable() -> None:
    with pytest.raises(ConfigError, match="COMFYUI_ARGS"):
        settings.from_env({"COMFYUI_ARGS": "--listen 'oops"})


def test_sizes_are_converted_to_bytes() -> None:
    s = settings.from_env({"WARMUP_CHUNK_MB": "8", "CACHE_RESERVE_MB": "0", "WARMUP_MAX_MBPS": "5"})
    assert s.warmup_chunk_bytes == 8 * 1024 * 1024
    assert s.cache_reserve_bytes == 0
    assert s.warmup_max_bytes_per_second == 5_000_000


@pytest.mark.parametrize("value", ["1", "true", "yes", "on", "TRUE"])
def test_skip_warmup_accepts_common_true_spellings(value: str) -> None:
    assert settings.from_env({"SKIP_WARMUP": value}).skip_warmup is True


def test_a_bare_warmup_config_name_prefers_the_volume_over_the_image() -> None:
    s = settings.from_env({"COMFYUI_PATH": "/vol/ComfyUI", "COMFY_INIT_CONFIG_DIR": "/img"})
    assert s.warmup_config_candidates() == [
        Path("/vol/ComfyUI/warmup_models.conf"),
        Path("/vol/warmup_models.conf"),
        Path("/img/warmup_models.conf"),
    ]


def test_an_absolute_warmup_config_is_the_only_candidate() -> None:
    s = settings.from_env({"WARMUP_CONFIG": "/etc/my.conf"})
    assert s.warmup_config_candidates() == [Path("/etc/my.conf")]


# A valid non-default value for every documented variable.
OTHER_VALUES = {
    "COMFYUI_PATH": "/srv/ComfyUI",
    "CACHE_PATH": "/nvme/cache",
    "WARMUP_CONFIG": "other.conf",
    "COMFY_INIT_CONFIG_DIR": "/opt/conf",
    "SKIP_WARMUP": "1",
    "WARMUP_MODE": "background",
    "WARMUP_STREAMS": "3",
    "WARMUP_CHUNK_MB": "16",
    "WARMUP_MAX_MBPS": "100",
    "CACHE_RESERVE_MB": "10",
    "COMFYUI_ARGS": "--cpu",
    "COMFYUI_PORT": "8000",
    "COMFYUI_PYTHON": "/usr/bin/python3.12",
    "COMFYUI_STOP_SECONDS": "3",
    "COMFYUI_RESTART_BACKOFF": "2.5",
    "RUN_DIR": "/tmp/run",
    "SUPERVISORD_CONF": "/tmp/s.conf",
    "SUPERVISORD_TEMPLATE": "/tmp/s.conf.j2",
    "METRICS": "0",
    "METRICS_PORT": "9999",
    "METRICS_ADDR": "127.0.0.1",
    "WATCHDOG": "0",
    "WATCHDOG_INTERVAL": "1",
    "WATCHDOG_FAILURES": "2",
    "WATCHDOG_GRACE": "5",
    "WATCHDOG_BUSY_LIMIT": "60",
    "WRITEBACK": "0",
    "LOG_LEVEL": "debug",
    "LOG_FORMAT": "json",
}


def test_every_documented_variable_is_read() -> None:
    assert sorted(OTHER_VALUES) == sorted(v.name for v in settings.ENV_VARS)
    defaults = settings.from_env({})
    for name, value in OTHER_VALUES.items():
        assert settings.from_env({name: value}) != defaults, f"{name} has no effect"


def test_every_settings_field_is_set_by_some_variable() -> None:
    changed: set[str] = set()
    defaults = settings.from_env({})
    for name, value in OTHER_VALUES.items():
        s = settings.from_env({name: value})
        changed |= {
            f
            for f in settings.Settings.__dataclass_fields__
            if getattr(s, f) != getattr(defaults, f)
        }
    assert changed == set(settings.Settings.__dataclass_fields__)
