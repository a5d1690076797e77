"""Settings come from the environment; every bad variable is reported at once, by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from comfy_init import env_values, env_vars, settings
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


def test_usage_journals_live_on_the_volume_unless_usage_dir_says_otherwise() -> None:
    s = settings.from_env({"COMFYUI_PATH": "/vol/ComfyUI"})
    assert s.usage_path == Path("/vol/ComfyUI/.comfy-init/usage")
    assert settings.from_env({"USAGE_DIR": "/srv/u"}).usage_path == Path("/srv/u")
    assert settings.from_env({"WARMUP_AUTO_MAX_MB": "3"}).warmup_auto_max_bytes == 3 * 1024**2
    with pytest.raises(ConfigError, match=r"WARMUP_AUTO_DAYS='0' is invalid: expected"):
        settings.from_env({"WARMUP_AUTO_DAYS": "0"})


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
    "WARMUP_AUTO_DAYS": "30",
    "WARMUP_AUTO_MAX_MB": "2048",
    "USAGE_DIR": "/srv/usage",
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
    "METRICS_WEB_CONFIG": "/etc/comfy-init/web-config.yml",
    "METRICS_READ_TIMEOUT": "2",
    "METRICS_MAX_REQUESTS": "10",
    "WATCHDOG": "0",
    "WATCHDOG_INTERVAL": "1",
    "WATCHDOG_FAILURES": "2",
    "WATCHDOG_GRACE": "5",
    "WATCHDOG_BUSY_LIMIT": "60",
    "WRITEBACK": "0",
    "LOG_LEVEL": "debug",
    "LOG_FORMAT": "json",
    "PUBLIC_KEY": "ssh-ed25519 AAAA me",
    "SSH": "0",
    "JUPYTER_PASSWORD": "secret",
    "JUPYTER": "1",
    "HOOK_TIMEOUT": "30",
    "RUNPOD_ENDPOINT_ID": "abc123",
}


def test_every_documented_variable_is_read() -> None:
    assert sorted(OTHER_VALUES) == sorted(v.name for v in env_vars.ENV_VARS)
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


def test_each_field_is_declared_by_exactly_one_variable() -> None:
    fields = [v.field for v in env_vars.ENV_VARS]
    assert sorted(fields) == sorted(settings.Settings.__dataclass_fields__)
    assert len({v.name for v in env_vars.ENV_VARS}) == len(env_vars.ENV_VARS)


@pytest.mark.parametrize("var", env_vars.ENV_VARS, ids=lambda v: v.name)
def test_a_default_written_out_reads_back_as_the_unset_variable(
    var: env_vars.EnvVar[object],
) -> None:
    assert var.kind.parse(var.default_text) == var.default
    assert settings.from_env({var.name: var.default_text}) == settings.from_env({})


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("WARMUP_STREAMS", "0", "expected a whole number from 1 to 256"),
        ("WARMUP_CHUNK_MB", "4097", "expected a whole number of MiB from 1 to 4096"),
        ("COMFYUI_PORT", "http", "expected a port number from 1 to 65535"),
        ("WATCHDOG_INTERVAL", "0.01", "expected seconds from 0.05 to 3600"),
        ("LOG_LEVEL", "loud", "expected one of debug, info, warning, error"),
        ("WARMUP_MODE", "lazy", "expected blocking or background"),
        ("METRICS", "maybe", "expected 0 or 1"),
        ("RUN_DIR", " ", "expected a directory path"),
    ],
)
def test_a_bad_value_is_answered_with_what_its_declaration_accepts(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        settings.from_env({name: value})
    assert str(info.value) == f"environment: {name}={value!r} is invalid: {expected}"


def test_the_readme_column_and_the_error_say_the_same_thing() -> None:
    for var in env_vars.ENV_VARS:
        assert var.kind.accepts(env_values.markdown).replace("`", "") == var.kind.accepts()


def test_every_runtime_file_is_a_distinct_path_under_run_dir() -> None:
    s = settings.from_env({"RUN_DIR": "/tmp/r"})
    paths = [
        s.report_path,
        s.warmup_lock_path,
        s.cache_yaml_path,
        s.supervisord_socket,
        s.supervisord_pidfile,
        s.log_dir,
    ]
    assert all(p.parent == Path("/tmp/r") for p in paths)
    assert len(set(paths)) == len(paths)
