"""``comfy-init start``: flags, warmup modes and start-up failures, each with its exit code."""

from __future__ import annotations

import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from comfy_init import boot, settings
from comfy_init.comfyui.model_paths import configured_types
from comfy_init.warmup import at_start
from harness import boots as h
from harness.pid1 import Pid1
from harness.polling import wait_for

MIB = 1024 * 1024


@pytest.fixture
def start(tmp_path: Path, comfyui_dir: Path) -> Iterator[Callable[..., Pid1]]:
    yield from h.runner(tmp_path, comfyui_dir)


@pytest.fixture
def model(
    tmp_path: Path, comfyui_dir: Path, make_safetensors: Callable[..., Path]
) -> Callable[[str], Path]:
    """``model(name)``: a 1 MiB checkpoint on the "volume", listed in the warmup config."""

    def make(name: str) -> Path:
        path = make_safetensors(comfyui_dir / "models" / "checkpoints" / name, MIB)
        config = tmp_path / "warmup_models.conf"
        with config.open("a") as fh:
            fh.write(f"checkpoints/{name}\n")
        return path

    return make


def stop(run: Pid1) -> int:
    run.signal(signal.SIGTERM)
    return run.wait_exit(15)


# -- in-process: the model paths file -----------------------------------------------------
def test_model_paths_file_lists_the_config_types_and_exists_without_a_config(
    tmp_path: Path,
) -> None:
    env = {
        "COMFYUI_PATH": str(tmp_path / "ComfyUI"),
        "CACHE_PATH": str(tmp_path / "cache"),
        "RUN_DIR": str(tmp_path / "run"),
        "WARMUP_CONFIG": str(tmp_path / "warmup_models.conf"),
    }
    s = settings.from_env(env)
    boot.write_model_paths(s)
    assert s.cache_yaml_path.is_file()
    (tmp_path / "warmup_models.conf").write_text("loras/a.safetensors\ncheckpoints/b.sft\n")
    assert configured_types(at_start.config_entries(s)) == ["loras", "checkpoints"]
    boot.write_model_paths(s)
    section = next(iter(yaml.safe_load(s.cache_yaml_path.read_text()).values()))
    assert section["loras"] == str(tmp_path / "cache" / "loras")
    assert section["checkpoints"] == str(tmp_path / "cache" / "checkpoints")


# -- processes ------------------------------------------------------------------------------
pytestmark = [pytest.mark.timeout(90)]
process = pytest.mark.process


@process
def test_warmup_only_warms_and_exits_0_without_starting_comfyui(
    start: Callable[..., Pid1], model: Callable[[str], Path], tmp_path: Path
) -> None:
    source = model("a.safetensors")
    run = start("--warmup-only")
    assert run.wait_exit(30) == 0
    assert (tmp_path / "cache" / "checkpoints" / "a.safetensors").read_bytes() == (
        source.read_bytes()
    )
    assert h.records(run.env, "start") == []
    assert not run.find_events("supervisord_started")
    assert len(run.find_events("model_paths_written")) == 1  # as a warmup run by hand


@process
def test_skip_warmup_starts_comfyui_without_copying(
    start: Callable[..., Pid1], model: Callable[[str], Path], tmp_path: Path
) -> None:
    model("a.safetensors")
    run = start("--skip-warmup")
    run.wait_event("comfyui_ready", 30)
    assert not (tmp_path / "cache" / "checkpoints" / "a.safetensors").exists()
    assert stop(run) == 0


@process
def test_skip_warmup_variable_does_the_same_as_the_flag(
    start: Callable[..., Pid1], model: Callable[[str], Path], tmp_path: Path
) -> None:
    model("a.safetensors")
    run = start(env={"SKIP_WARMUP": "1"})
    run.wait_event("comfyui_ready", 30)
    assert not (tmp_path / "cache" / "checkpoints" / "a.safetensors").exists()
    assert run.find_events("starting")[0]["warmup"] == "skip"
    assert stop(run) == 0


@process
def test_blocking_warmup_copies_first_and_comfyui_resolves_the_cache_first(
    start: Callable[..., Pid1], model: Callable[[str], Path], tmp_path: Path
) -> None:
    model("a.safetensors")
    run = start()
    run.wait_event("comfyui_ready", 30)
    cache_dir = tmp_path / "cache" / "checkpoints"
    assert (cache_dir / "a.safetensors").is_file()
    paths = h.http(run, "GET", "/internal/folder_paths")
    assert paths["checkpoints"][0] == str(cache_dir)
    names = [e["event"] for e in run.events()]
    assert names.index("warmup_finished") < names.index("supervisord_started")
    assert names.count("model_paths_written") == 1
    assert names.index("warmup_finished") < names.index("model_paths_written")
    assert stop(run) == 0


@process
def test_a_failed_warmup_still_starts_comfyui(start: Callable[..., Pid1], tmp_path: Path) -> None:
    (tmp_path / "warmup_models.conf").write_bytes(b"loras/\xff\xfe.safetensors\n")  # not UTF-8
    run = start()
    failed = run.wait_event("warmup_failed", 30)
    assert f"warmup config {tmp_path / 'warmup_models.conf'}: cannot be read" in failed["error"]
    run.wait_event("comfyui_ready", 30)
    assert Path(run.env["RUN_DIR"], "extra_model_paths.yaml").is_file()
    assert stop(run) == 0


@process
def test_a_skipped_config_line_is_logged_and_comfyui_starts(
    start: Callable[..., Pid1], tmp_path: Path
) -> None:
    (tmp_path / "warmup_models.conf").write_text("/absolute/is/not/allowed.safetensors\n")
    run = start()
    skipped = run.wait_event("warmup_skipped_lines", 30)
    assert [p.split(": ")[0] for p in skipped["problems"]] == [
        f"{tmp_path / 'warmup_models.conf'}:1"
    ]
    run.wait_event("comfyui_ready", 30)
    assert not run.find_events("warmup_failed")
    assert Path(run.env["RUN_DIR"], "extra_model_paths.yaml").is_file()
    assert stop(run) == 0


@process
def test_background_warmup_runs_beside_a_comfyui_that_starts_at_once(
    start: Callable[..., Pid1], model: Callable[[str], Path], tmp_path: Path
) -> None:
    model("a.safetensors")
    run = start(env={"WARMUP_MODE": "background"})
    run.wait_event("comfyui_ready", 30)
    yaml_path = Path(run.env["RUN_DIR"], "extra_model_paths.yaml")
    written = yaml_path.stat()
    copy = tmp_path / "cache" / "checkpoints" / "a.safetensors"
    h.wait_for(copy.is_file, 30, "the background warmup's copy")
    h.wait_for(
        lambda: "EXITED" in run.supervisorctl("status", "warmup").stdout,
        30,
        "the warmup program to finish",
        step=0.3,
    )
    assert "exited: warmup (exit status 0; expected)" in run.stdout()
    # The YAML ComfyUI started with is the only one: the warmup program left it alone.
    assert "warmup_finished" in run.stdout()  # the program's own log, relayed
    assert "model_paths_written" not in run.stdout()
    assert len(run.find_events("model_paths_written")) == 1
    after = yaml_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (written.st_ino, written.st_mtime_ns)
    # ComfyUI was started with the cache first in its search order before the copy existed.
    paths = h.http(run, "GET", "/internal/folder_paths")
    assert paths["checkpoints"][0] == str(tmp_path / "cache" / "checkpoints")
    assert not run.find_events("warmup_finished"), "the warmup ran under supervisord"
    assert stop(run) == 0


@process
def test_highvram_with_lowvram_is_rejected_before_anything_starts(
    start: Callable[..., Pid1],
) -> None:
    run = start("--highvram", "--lowvram")
    assert run.wait_exit(15) == 2
    assert "not allowed with argument" in run.stderr()


@process
def test_vram_flag_conflicting_with_comfyui_args_names_both_sources(
    start: Callable[..., Pid1],
) -> None:
    run = start("--highvram", env={"COMFYUI_ARGS": "--listen 127.0.0.1 --lowvram"})
    assert run.wait_exit(15) == 3
    [failed] = run.find_events("failed")
    assert "--lowvram (from COMFYUI_ARGS)" in failed["error"]
    assert "--highvram (from the start command's flags)" in failed["error"]
    assert not Path(run.env["SUPERVISORD_CONF"]).exists()


@process
def test_warmup_only_without_comfyui_exits_4_saying_where_it_looked(
    start: Callable[..., Pid1], tmp_path: Path
) -> None:
    run = start("--warmup-only", env={"COMFYUI_PATH": str(tmp_path / "nowhere")})
    assert run.wait_exit(15) == 4
    [failed] = run.find_events("failed")
    assert str(tmp_path / "nowhere" / "main.py") in failed["error"]
    assert "COMFYUI_PATH" in failed["error"]


@process
def test_missing_comfyui_keeps_the_container_up_then_warms_and_starts_it_once_it_appears(
    start: Callable[..., Pid1], tmp_path: Path, comfyui_dir: Path, model: Callable[[str], Path]
) -> None:
    model("late.safetensors")
    volume = tmp_path / "volume" / "ComfyUI"
    run = start(env={"COMFYUI_PATH": str(volume)})
    missing = run.wait_event("comfyui_missing", 15)
    assert missing["path"] == str(volume / "main.py")
    assert "COMFYUI_PATH" in missing["hint"]
    # supervisord runs, ComfyUI in it but not started
    wait_for(lambda: "STOPPED" in run.supervisorctl("status", "comfyui").stdout, 15, "supervisord")
    assert run.proc is not None
    assert run.proc.poll() is None, "the container stays up"
    assert h.records(run.env, "start") == []
    shutil.copytree(comfyui_dir, volume.with_name("ComfyUI.tmp"))  # as a clone lands
    volume.with_name("ComfyUI.tmp").rename(volume)
    run.wait_event("comfyui_ready", 60)
    events = [e["event"] for e in run.events()]
    assert events.index("comfyui_found") < events.index("warmup_finished")
    assert events.index("warmup_finished") < events.index("comfyui_ready"), "blocking: warm first"
    assert (tmp_path / "cache" / "checkpoints" / "late.safetensors").exists()
    [started] = h.records(run.env, "start")
    assert started["cwd"] == str(volume)
    assert stop(run) == 0


@process
def test_a_public_key_line_that_is_not_a_key_exits_3_before_anything_runs(
    start: Callable[..., Pid1],
) -> None:
    run = start(env={"PUBLIC_KEY": "ssh-ed25519 AAAAC3Nz me\n-----BEGIN OPENSSH PRIVATE KEY-----"})
    assert run.wait_exit(15) == 3
    [failed] = run.find_events("failed")
    assert "PUBLIC_KEY line 1:" in failed["error"]
    assert "PUBLIC_KEY line 2:" in failed["error"]
    assert not Path(run.env["SUPERVISORD_CONF"]).exists()


@process
def test_bad_template_exits_3_naming_the_template(
    start: Callable[..., Pid1], tmp_path: Path
) -> None:
    template = tmp_path / "broken.conf.j2"
    template.write_text("[supervisord]\nnodaemon=true\nx={{ no_such_thing }}\n")
    run = start(env={"SUPERVISORD_TEMPLATE": str(template)})
    assert run.wait_exit(15) == 3
    [failed] = run.find_events("failed")
    assert str(template) in failed["error"]
    assert "no_such_thing" in failed["error"]


@process
def test_bad_variable_exits_3_naming_it(start: Callable[..., Pid1]) -> None:
    run = start(env={"COMFYUI_STOP_SECONDS": "soon"})
    assert run.wait_exit(15) == 3
    assert "COMFYUI_STOP_SECONDS='soon'" in run.stderr()
