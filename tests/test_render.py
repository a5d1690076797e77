"""Rendering and checking the supervisord config, and the ComfyUI command line (no processes)."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from supervisor.datatypes import dict_of_key_value_pairs
from supervisor.options import ProcessConfig, ServerOptions, expand

from comfy_init import settings
from comfy_init.errors import EXIT_CONFIG, EXIT_WARMUP_INCOMPLETE, ConfigError, EnvironmentMissing
from comfy_init.supervisord import config as supervisord_config
from comfy_init.supervisord import programs, render

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "supervisord.conf"

# Text supervisord can hold on one config line.
line_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\0"),
    max_size=40,
)


def conf(tmp_path: Path, **env: str) -> settings.Settings:
    base = {
        "COMFYUI_PATH": str(tmp_path / "ComfyUI"),
        "RUN_DIR": str(tmp_path / "run"),
        "CACHE_PATH": str(tmp_path / "cache"),
        "SUPERVISORD_CONF": str(tmp_path / "supervisord.conf"),
    }
    return settings.from_env({**base, **env})


# -- filters -------------------------------------------------------------------------------
@given(line_text)
def test_pct_escaped_text_comes_back_unchanged_from_supervisord_expansion(text: str) -> None:
    assert expand(render.pct(text), {"here": "/x"}, "test") == text


@given(st.lists(line_text.filter(lambda s: "\r" not in s), min_size=1, max_size=6))
def test_command_filter_round_trips_through_supervisord_and_shell_splitting(
    argv: list[str],
) -> None:
    assert shlex.split(expand(render.command(argv), {}, "command")) == argv


def test_command_filter_quotes_spaces_and_escapes_percent() -> None:
    assert render.command(["python", "main.py", "--x", "a b%"]) == "python main.py --x 'a b%%'"


def test_command_filter_rejects_a_line_break_naming_the_argument() -> None:
    with pytest.raises(ConfigError, match="line break"):
        render.command(["python", "two\nlines"])


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True),
        line_text.filter(lambda s: not set(s) & set("\"'\r") and s == s.strip()),
        max_size=4,
    )
)
def test_environment_filter_round_trips_through_supervisord_parser(env: dict[str, str]) -> None:
    parsed = dict_of_key_value_pairs(expand(render.environment(env), {}, "environment"))
    assert parsed == env


def test_environment_filter_rejects_a_quote_in_a_value() -> None:
    with pytest.raises(ConfigError, match="A='say \"hi\"'"):
        render.environment({"A": 'say "hi"'})


@given(st.text(max_size=400) | st.text(alphabet="ab -\n\r\t\x85", max_size=400))
def test_comment_filter_makes_short_comment_lines_that_keep_every_word(text: str) -> None:
    rendered = render.comment(text)
    assert "\r" not in rendered  # a config file's lines end at \n and \r, nowhere else
    lines = rendered.split("\n") if rendered else []
    assert all(line.startswith("; ") for line in lines)
    assert all(len(line) <= render.COMMENT_WIDTH or " " not in line[2:] for line in lines)
    assert " ".join(line[2:] for line in lines).split() == text.split()


# -- the shipped template ------------------------------------------------------------------
def golden_context(template: str = "supervisord.conf.j2") -> dict[str, object]:
    s = settings.from_env({"COMFYUI_PATH": "/workspace/ComfyUI"})
    start = programs.Start(
        s,
        python="/workspace/ComfyUI/venv/bin/python",
        background_warmup=True,
        own_python="/opt/comfy-init/bin/python",
    )
    return render.context(s, template=template, user="root", programs=programs.for_start(start))


def test_shipped_template_renders_the_golden_config() -> None:
    text = render.render(render.SHIPPED_TEMPLATE.read_text(), "shipped", golden_context())
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_a_template_written_before_the_program_list_still_renders_as_it_did() -> None:
    # The shipped template as it was when it named comfyui, metrics and warmup one by one.
    old = (GOLDEN.parent / "supervisord_before_programs.conf.j2").read_text()
    text = render.render(old, "old", golden_context())
    assert text == (GOLDEN.parent / "supervisord_before_programs.conf").read_text()


def supervisord_view(text: str, run_dir: Path) -> dict[str, dict[str, object]]:
    """Every program's settings as supervisord reads them from ``text`` (a golden file, whose
    RUN_DIR is moved to ``run_dir``: supervisord's parser wants its folders to exist)."""
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    options = ServerOptions()
    options.configfile = str(run_dir / "supervisord.conf")
    options.here = str(run_dir)
    options.read_config(io.StringIO(text.replace("/run/comfy-init", str(run_dir))))
    names = ProcessConfig.req_param_names + ProcessConfig.optional_param_names
    return {
        proc.name: {n: getattr(proc, n) for n in names}
        for group in options.configroot.supervisord.process_group_configs
        for proc in group.process_configs
    }


def test_the_program_list_gives_supervisord_the_same_programs_and_values_as_before(
    tmp_path: Path,
) -> None:
    old = (GOLDEN.parent / "supervisord_before_programs.conf").read_text()
    before = supervisord_view(old, tmp_path)
    now = supervisord_view(GOLDEN.read_text(), tmp_path)
    assert sorted(now) == ["comfyui", "metrics", "warmup"]
    assert now == before


def test_rendered_default_config_passes_supervisord_parser(tmp_path: Path) -> None:
    s = conf(tmp_path, METRICS="1")
    config = supervisord_config.build_config(s, python=sys.executable, background_warmup=True)
    supervisord_config.install(s, config)
    text = s.supervisord_conf.read_text()
    assert "[inet_http_server]" not in text
    assert f"serverurl=unix://{tmp_path}/run/supervisord.sock" in text
    assert config.program_names == ("comfyui", "metrics", "warmup")


def test_metrics_0_leaves_the_sidecar_out(tmp_path: Path) -> None:
    config = supervisord_config.build_config(conf(tmp_path, METRICS="0"), python=sys.executable)
    assert config.program_names == ("comfyui",)
    assert "[program:metrics]" not in config.text
    assert "[program:warmup]" not in config.text


def test_package_template_is_the_top_level_file() -> None:
    assert render.SHIPPED_TEMPLATE.read_bytes() == (REPO / "supervisord.conf.j2").read_bytes()


@pytest.mark.timeout(120)
def test_built_wheel_contains_the_real_template(tmp_path: Path) -> None:
    subprocess.run(
        # pip builds in an isolated environment, as the image's builder stage does.
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", tmp_path, REPO],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("comfy_init/supervisord/supervisord.conf.j2")
    assert shipped == (REPO / "supervisord.conf.j2").read_bytes()


# -- a user's template ---------------------------------------------------------------------
def user_template(tmp_path: Path, text: str) -> settings.Settings:
    path = tmp_path / "mine.conf.j2"
    path.write_text(text)
    return conf(tmp_path, SUPERVISORD_TEMPLATE=str(path))


def test_unknown_variable_in_a_template_names_it_and_the_template(tmp_path: Path) -> None:
    s = user_template(tmp_path, "[supervisord]\nnodaemon=true\nfoo={{ comfy_ui }}\n")
    with pytest.raises(ConfigError) as err:
        supervisord_config.build_config(s, python=sys.executable)
    assert "mine.conf.j2" in str(err.value)
    assert "comfy_ui" in str(err.value)
    assert "comfyui" in str(err.value)  # the variables that do exist


def test_template_syntax_error_names_the_line(tmp_path: Path) -> None:
    s = user_template(tmp_path, "[supervisord]\n\n{% if %}\n")
    with pytest.raises(ConfigError, match=r"mine\.conf\.j2:3"):
        supervisord_config.build_config(s, python=sys.executable)


def test_unreadable_template_names_the_variable(tmp_path: Path) -> None:
    s = conf(tmp_path, SUPERVISORD_TEMPLATE=str(tmp_path / "absent.j2"))
    with pytest.raises(ConfigError, match="SUPERVISORD_TEMPLATE"):
        supervisord_config.build_config(s, python=sys.executable)


def shipped_with(extra: str, tmp_path: Path) -> settings.Settings:
    return user_template(tmp_path, render.SHIPPED_TEMPLATE.read_text() + extra)


def test_a_tcp_control_port_is_refused(tmp_path: Path) -> None:
    s = shipped_with("\n[inet_http_server]\nport=127.0.0.1:9001\n", tmp_path)
    config = supervisord_config.build_config(s, python=sys.executable)
    with pytest.raises(ConfigError, match="inet_http_server"):
        supervisord_config.install(s, config)
    assert not s.supervisord_conf.exists()


def test_config_supervisord_would_refuse_is_reported_with_its_reason(tmp_path: Path) -> None:
    s = shipped_with("\n[program:extra]\ncommand=sleep 1\nstopsignal=NOPE\n", tmp_path)
    config = supervisord_config.build_config(s, python=sys.executable)
    with pytest.raises(ConfigError, match="NOPE") as err:
        supervisord_config.install(s, config)
    assert "mine.conf.j2" in str(err.value)


def test_missing_control_sections_and_comfyui_program_are_all_reported(tmp_path: Path) -> None:
    s = user_template(tmp_path, "[supervisord]\nnodaemon=false\n")
    config = supervisord_config.build_config(s, python=sys.executable)
    with pytest.raises(ConfigError) as err:
        supervisord_config.install(s, config)
    text = str(err.value)
    for needed in ("[unix_http_server]", "[supervisorctl]", "[rpcinterface:supervisor]"):
        assert needed in text
    assert "nodaemon=true" in text
    assert "[program:comfyui]" in text


def test_a_run_dir_too_long_for_a_unix_socket_is_refused(tmp_path: Path) -> None:
    s = conf(tmp_path, RUN_DIR="/" + "r" * 120)
    with pytest.raises(ConfigError, match="RUN_DIR"):
        supervisord_config.build_config(s, python=sys.executable)


# -- the programs --------------------------------------------------------------------------
def test_a_start_runs_comfyui_then_the_sidecar_then_the_background_warmup(tmp_path: Path) -> None:
    s = conf(tmp_path)
    names = [p.name for p in programs.for_start(programs.Start(s, python="/py"))]
    assert names == ["comfyui", "metrics"]
    background = programs.Start(s, python="/py", background_warmup=True)
    assert [p.name for p in programs.for_start(background)] == ["comfyui", "metrics", "warmup"]
    alone = programs.Start(conf(tmp_path, METRICS="0"), python="/py")
    assert [p.name for p in programs.for_start(alone)] == ["comfyui"]


def test_comfyui_stops_first_on_sigint_within_comfyui_stop_seconds(tmp_path: Path) -> None:
    start = programs.Start(conf(tmp_path, COMFYUI_STOP_SECONDS="4"), python="/py")
    comfyui, sidecar = programs.for_start(start)
    assert (comfyui.stop_signal, comfyui.stop_seconds) == ("INT", 4)
    assert comfyui.priority > sidecar.priority  # supervisord stops the highest first
    assert comfyui.autorestart


def test_the_background_warmup_runs_once_and_skipped_lines_or_an_incomplete_warmup_are_expected(
    tmp_path: Path,
) -> None:
    start = programs.Start(conf(tmp_path), python="/py", background_warmup=True)
    warmup = programs.warmup(start)
    assert warmup is not None
    assert not warmup.autorestart
    assert warmup.exit_codes == (0, EXIT_CONFIG, EXIT_WARMUP_INCOMPLETE)
    assert warmup.priority < min(p.priority for p in programs.for_start(start)[:2])


def test_comfy_init_programs_run_its_own_interpreter_with_default_signals(tmp_path: Path) -> None:
    start = programs.Start(conf(tmp_path), python="/py", own_python="/opt/ci/python")
    sidecar = programs.metrics(start)
    assert sidecar is not None
    assert sidecar.argv == (
        "/usr/bin/env",
        "--default-signal=PIPE,XFSZ",
        "/opt/ci/python",
        "-m",
        "comfy_init",
        "metrics",
    )
    assert sidecar.environment == {"PYTHONUNBUFFERED": "1"}


# -- ComfyUI's command line ----------------------------------------------------------------
def test_comfyui_argv_is_port_yaml_comfyui_args_vram_flag_then_extra(tmp_path: Path) -> None:
    s = conf(tmp_path, COMFYUI_ARGS="--listen --disable-metadata", COMFYUI_PORT="8000")
    prog = programs.comfyui(
        programs.Start(
            s, python="/py", vram_flags=("--highvram",), extra=("--", "--verbose", "INFO")
        )
    )
    assert prog.argv == (
        "/usr/bin/env",
        "--default-signal=PIPE,XFSZ",
        "/py",
        "main.py",
        "--port",
        "8000",
        "--extra-model-paths-config",
        str(tmp_path / "run" / "extra_model_paths.yaml"),
        "--listen",
        "--disable-metadata",
        "--highvram",
        "--verbose",
        "INFO",
    )
    assert prog.directory == tmp_path / "ComfyUI"
    assert prog.environment == {"PYTHONUNBUFFERED": "1"}


def test_two_vram_modes_from_different_places_are_rejected_naming_each(tmp_path: Path) -> None:
    s = conf(tmp_path, COMFYUI_ARGS="--lowvram")
    with pytest.raises(ConfigError) as err:
        programs.comfyui(
            programs.Start(s, python="/py", vram_flags=("--highvram",), extra=("--", "--cpu"))
        )
    text = str(err.value)
    assert "--lowvram (from COMFYUI_ARGS)" in text
    assert "--highvram (from the start command's flags)" in text
    assert "--cpu (from the arguments after --)" in text


def test_one_vram_mode_is_accepted(tmp_path: Path) -> None:
    s = conf(tmp_path, COMFYUI_ARGS="--novram")
    assert "--novram" in programs.comfyui(programs.Start(s, python="/py")).argv


@pytest.mark.parametrize("arg", ["--port", "--port=9000"])
def test_a_port_in_comfyui_args_is_refused_in_favour_of_comfyui_port(
    tmp_path: Path, arg: str
) -> None:
    s = conf(tmp_path, COMFYUI_ARGS=f"{arg} 9000" if arg == "--port" else arg)
    with pytest.raises(ConfigError, match="set COMFYUI_PORT instead"):
        programs.comfyui(programs.Start(s, python="/py"))


def test_interpreter_prefers_comfyui_python_then_venv_then_dot_venv(tmp_path: Path) -> None:
    root = tmp_path / "ComfyUI"
    for venv in ("venv", ".venv"):
        py = root / venv / "bin" / "python"
        py.parent.mkdir(parents=True)
        py.write_text("#!/bin/sh\n")
        py.chmod(0o755)
    assert programs.comfyui_python(conf(tmp_path)) == str(root / "venv" / "bin" / "python")
    (root / "venv" / "bin" / "python").unlink()
    assert programs.comfyui_python(conf(tmp_path)) == str(root / ".venv" / "bin" / "python")
    (root / ".venv" / "bin" / "python").unlink()
    assert programs.comfyui_python(conf(tmp_path), which=lambda n: f"/usr/bin/{n}") == (
        "/usr/bin/python3"
    )
    chosen = conf(tmp_path, COMFYUI_PYTHON=sys.executable)
    assert programs.comfyui_python(chosen) == sys.executable


def test_missing_comfyui_python_names_the_variable(tmp_path: Path) -> None:
    s = conf(tmp_path, COMFYUI_PYTHON=str(tmp_path / "nope"))
    with pytest.raises(EnvironmentMissing, match="COMFYUI_PYTHON="):
        programs.comfyui_python(s)


def test_missing_comfyui_says_where_it_looked_and_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentMissing) as err:
        programs.check_comfyui_present(conf(tmp_path))
    assert str(tmp_path / "ComfyUI" / "main.py") in str(err.value)
    assert "set COMFYUI_PATH" in str(err.value)
