"""The ComfyUI stand-in follows ComfyUI's documented model-path rules and answers each
endpoint with ComfyUI's shapes; its test knobs do what its README says."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from comfyui_standin.folder_paths import FolderPaths
from comfyui_standin.safetensors_file import data_offset, read_header
from harness.polling import wait_for
from harness.standin import StandinProcess, make_comfyui_dir

pytestmark = pytest.mark.timeout(60)

MakeST = Callable[..., Path]
Start = Callable[..., StandinProcess]


def paths_after(base: Path, *yaml_files: tuple[Path, str]) -> FolderPaths:
    """FolderPaths for an install at ``base`` after loading each (path, text) YAML in order."""
    paths = FolderPaths(str(base))
    for path, text in yaml_files:
        path.write_text(text)
        paths.load_yaml_file(str(path), say=lambda _line: None)
    return paths


def events(proc: StandinProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in proc.records() if e["event"] == name]


# --- model-path rules (pure, no process) -------------------------------------------------


def test_yaml_without_is_default_is_searched_after_the_install_models_dir(tmp_path: Path) -> None:
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", "c:\n  checkpoints: /cache/ckpt\n"))
    assert paths.paths("checkpoints") == [str(tmp_path / "models/checkpoints"), "/cache/ckpt"]


@pytest.mark.parametrize("flag", ["true", "yes", "1", '"false"', '"0"'])
def test_truthy_is_default_puts_the_yaml_path_first_even_the_string_false(
    tmp_path: Path, flag: str
) -> None:
    text = f"c:\n  is_default: {flag}\n  checkpoints: /cache/ckpt\n"
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", text))
    assert paths.paths("checkpoints")[0] == "/cache/ckpt"


@pytest.mark.parametrize("flag", ["false", "no", "0", '""'])
def test_falsy_is_default_appends_the_yaml_path(tmp_path: Path, flag: str) -> None:
    text = f"c:\n  is_default: {flag}\n  checkpoints: /cache/ckpt\n"
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", text))
    assert paths.paths("checkpoints")[-1] == "/cache/ckpt"


def test_several_lines_under_one_default_key_come_out_reversed(tmp_path: Path) -> None:
    text = "c:\n  is_default: true\n  loras: |\n    /a\n    /b\n    /c\n"
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", text))
    assert paths.paths("loras") == ["/c", "/b", "/a", str(tmp_path / "models/loras")]


def test_several_lines_without_default_keep_their_order_after_the_builtin(tmp_path: Path) -> None:
    text = "c:\n  loras: |\n    /a\n    /b\n"
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", text))
    assert paths.paths("loras") == [str(tmp_path / "models/loras"), "/a", "/b"]


def test_a_later_default_file_comes_before_an_earlier_one(tmp_path: Path) -> None:
    first = (tmp_path / "first.yaml", "a:\n  is_default: true\n  vae: /first\n")
    second = (tmp_path / "second.yaml", "b:\n  is_default: true\n  vae: /second\n")
    paths = paths_after(tmp_path, first, second)
    assert paths.paths("vae")[:2] == ["/second", "/first"]


def test_base_path_is_joined_with_relative_lines_and_ignored_by_absolute_ones(
    tmp_path: Path,
) -> None:
    text = "c:\n  base_path: /vol/cache\n  checkpoints: |\n    ckpt\n    /abs/elsewhere\n"
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", text))
    assert paths.paths("checkpoints")[1:] == ["/vol/cache/ckpt", "/abs/elsewhere"]


def test_relative_base_path_and_bare_relative_lines_are_relative_to_the_yaml_dir(
    tmp_path: Path,
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    text = "a:\n  base_path: ../cache\n  vae: vae\nb:\n  loras: ./my_loras\n"
    paths = paths_after(tmp_path, (conf / "x.yaml", text))
    assert paths.paths("vae")[-1] == str(tmp_path / "cache/vae")
    assert paths.paths("loras")[-1] == str(conf / "my_loras")


def test_base_path_expands_home_and_environment_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STANDIN_TEST_ROOT", "/from/env")
    text = "c:\n  base_path: $STANDIN_TEST_ROOT/models\n  vae: vae\n"
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", text))
    assert paths.paths("vae")[-1] == "/from/env/models/vae"


def test_legacy_unet_and_clip_keys_feed_diffusion_models_and_text_encoders(
    tmp_path: Path,
) -> None:
    text = "c:\n  is_default: true\n  unet: /cache/unet\n  clip: /cache/clip\n"
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", text))
    assert paths.paths("diffusion_models")[0] == "/cache/unet"
    assert paths.paths("unet") == paths.paths("diffusion_models")
    assert paths.paths("text_encoders")[0] == "/cache/clip"
    assert "unet" not in paths.folders
    assert "clip" not in paths.folders


def test_legacy_folders_on_disk_are_searched_for_the_new_names(tmp_path: Path) -> None:
    install = make_comfyui_dir(tmp_path / "ComfyUI")
    (install / "models/unet/old.safetensors").write_bytes(b"x")
    (install / "models/clip/enc.safetensors").write_bytes(b"x")
    paths = FolderPaths(str(install))
    assert paths.filename_list("diffusion_models") == ["old.safetensors"]
    assert paths.full_path("text_encoders", "enc.safetensors") == str(
        install / "models/clip/enc.safetensors"
    )


def test_a_path_already_listed_is_moved_to_the_front_by_default_not_duplicated(
    tmp_path: Path,
) -> None:
    builtin = str(tmp_path / "models/vae")
    text = f"c:\n  vae: /extra\nd:\n  is_default: true\n  vae: {builtin}\n"
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", text))
    assert paths.paths("vae") == [builtin, "/extra"]


def test_an_unknown_folder_key_becomes_a_folder_that_lists_every_file(tmp_path: Path) -> None:
    (tmp_path / "ipa").mkdir()
    (tmp_path / "ipa/a.bin").write_bytes(b"x")
    (tmp_path / "ipa/notes.txt").write_text("x")
    paths = paths_after(tmp_path, (tmp_path / "x.yaml", f"c:\n  ipadapter: {tmp_path}/ipa\n"))
    assert paths.filename_list("ipadapter") == ["a.bin", "notes.txt"]


def test_a_list_value_in_the_yaml_raises_as_it_crashes_comfyui(tmp_path: Path) -> None:
    with pytest.raises(AttributeError):
        paths_after(tmp_path, (tmp_path / "x.yaml", "c:\n  vae:\n    - /a\n    - /b\n"))


def test_full_path_takes_the_first_existing_file_and_sees_new_files_at_once(
    tmp_path: Path,
) -> None:
    volume = make_comfyui_dir(tmp_path / "ComfyUI")
    cache = tmp_path / "cache"
    (volume / "models/checkpoints/m.safetensors").write_bytes(b"volume")
    text = f"c:\n  is_default: true\n  checkpoints: {cache}/checkpoints\n"
    paths = FolderPaths(str(volume))
    (tmp_path / "x.yaml").write_text(text)
    paths.load_yaml_file(str(tmp_path / "x.yaml"), say=lambda _line: None)
    assert paths.full_path("checkpoints", "m.safetensors") == str(
        volume / "models/checkpoints/m.safetensors"
    )
    (cache / "checkpoints").mkdir(parents=True)
    (cache / "checkpoints/m.safetensors").write_bytes(b"cache")
    assert paths.full_path("checkpoints", "m.safetensors") == str(
        cache / "checkpoints/m.safetensors"
    )


def test_full_path_ignores_directories_and_cannot_climb_out_of_a_search_dir(
    tmp_path: Path,
) -> None:
    install = make_comfyui_dir(tmp_path / "ComfyUI")
    (install / "models/secret.safetensors").write_bytes(b"x")
    (install / "models/vae/dir.safetensors").mkdir()
    paths = FolderPaths(str(install))
    assert paths.full_path("vae", "../secret.safetensors") is None
    assert paths.full_path("vae", "dir.safetensors") is None
    assert paths.full_path("no_such_folder", "x.safetensors") is None


def test_temp_copy_names_are_never_listed_and_do_not_resolve_the_final_name(
    tmp_path: Path,
) -> None:
    install = make_comfyui_dir(tmp_path / "ComfyUI")
    ckpt = install / "models/checkpoints"
    (ckpt / ".m.safetensors.a1b2c3.comfy-init-partial").write_bytes(b"x")
    (ckpt / "m.safetensors.partial").write_bytes(b"x")
    (ckpt / "sub").mkdir()
    (ckpt / "sub/real.SafeTensors").write_bytes(b"x")
    paths = FolderPaths(str(install))
    assert paths.filename_list("checkpoints") == ["sub/real.SafeTensors"]
    assert paths.full_path("checkpoints", "m.safetensors") is None


# --- safetensors helper ------------------------------------------------------------------


@pytest.mark.parametrize("content", ["pattern", "allocated", "sparse"])
@pytest.mark.parametrize("size", [100, 4096, 3 * 1024 * 1024 + 7])
def test_make_safetensors_writes_exactly_the_size_with_a_valid_header(
    tmp_path: Path, make_safetensors: MakeST, content: str, size: int
) -> None:
    path = make_safetensors(tmp_path / "m.safetensors", size, {"k": "v"}, content=content)
    assert path.stat().st_size == size
    raw = read_header(path)
    assert raw is not None
    header = json.loads(raw)
    assert header["__metadata__"] == {"k": "v"}
    assert (8 + len(raw)) % 8 == 0
    start, end = header["data"]["data_offsets"]
    assert data_offset(path) + end == size
    assert header["data"]["shape"] == [end - start]


def test_pattern_content_differs_between_files_and_between_mebibytes(
    tmp_path: Path, make_safetensors: MakeST
) -> None:
    a = make_safetensors(tmp_path / "a.safetensors", 3 * 1024 * 1024)
    b = make_safetensors(tmp_path / "b.safetensors", 3 * 1024 * 1024)
    da, db = a.read_bytes()[data_offset(a) :], b.read_bytes()[data_offset(b) :]
    assert da != db
    mib = 1024 * 1024
    assert da[:mib] != da[mib : 2 * mib]


def test_make_safetensors_refuses_a_size_smaller_than_its_header(
    tmp_path: Path, make_safetensors: MakeST
) -> None:
    with pytest.raises(ValueError, match="size_bytes=10"):
        make_safetensors(tmp_path / "m.safetensors", 10)


# --- the running stand-in ----------------------------------------------------------------


def test_system_stats_has_comfyui_shape_argv_and_configured_vram(standin: Start) -> None:
    proc = standin("--listen", "--disable-metadata", env={"STANDIN_VRAM_FREE": "1234"})
    proc.wait_ready()
    status, stats = proc.get("/system_stats")
    assert status == 200
    system = stats["system"]
    assert {"os", "python_version", "comfyui_version", "argv", "ram_total", "ram_free"} <= set(
        system
    )
    assert {"embedded_python", "pytorch_version"} <= set(system)
    assert system["argv"] == ["main.py", "--port", str(proc.port), "--listen", "--disable-metadata"]
    (device,) = stats["devices"]
    assert set(device) == {
        "name",
        "type",
        "index",
        "vram_total",
        "vram_free",
        "torch_vram_total",
        "torch_vram_free",
    }
    assert device["vram_free"] == 1234
    assert device["type"] == "cuda"


def test_cpu_flag_reports_a_cpu_device(standin: Start) -> None:
    proc = standin("--cpu")
    proc.wait_ready()
    (device,) = proc.get("/system_stats")[1]["devices"]
    assert (device["type"], device["index"]) == ("cpu", None)


def test_queue_is_empty_until_the_control_endpoint_fills_it(standin: Start) -> None:
    proc = standin()
    proc.wait_ready()
    assert proc.get("/queue") == (200, {"queue_running": [], "queue_pending": []})
    assert proc.post("/standin/queue?running=1&pending=2")[0] == 200
    queue = proc.get("/queue")[1]
    assert len(queue["queue_running"]) == 1
    assert len(queue["queue_pending"]) == 2
    number, prompt_id, *_ = queue["queue_pending"][1]
    assert (number, isinstance(prompt_id, str)) == (2, True)


def test_checkpoint_loader_choices_follow_the_checkpoint_listing(
    standin: Start, comfyui_dir: Path, make_safetensors: MakeST
) -> None:
    make_safetensors(comfyui_dir / "models/checkpoints/b.safetensors", 100)
    proc = standin()
    proc.wait_ready()
    make_safetensors(comfyui_dir / "models/checkpoints/a.sft", 100)
    status, info = proc.get("/object_info/CheckpointLoaderSimple")
    assert status == 200
    choices, options = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"]
    assert choices == ["a.sft", "b.safetensors"]
    assert "tooltip" in options
    assert proc.get("/object_info/NoSuchNode") == (200, {})


def test_models_lists_folder_names_and_unknown_or_legacy_names_are_404(
    standin: Start, comfyui_dir: Path, make_safetensors: MakeST
) -> None:
    make_safetensors(comfyui_dir / "models/unet/u.safetensors", 100)
    proc = standin()
    proc.wait_ready()
    status, folders = proc.get("/models")
    assert status == 200
    assert {"checkpoints", "diffusion_models", "text_encoders", "loras", "vae"} <= set(folders)
    assert proc.get("/models/diffusion_models") == (200, ["u.safetensors"])
    assert proc.get("/models/unet")[0] == 404
    assert proc.get("/models/nonsense")[0] == 404


def test_view_metadata_reads_the_header_of_the_file_found_first(
    standin: Start, comfyui_dir: Path, make_safetensors: MakeST, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    make_safetensors(comfyui_dir / "models/loras/l.safetensors", 200, {"where": "volume"})
    make_safetensors(cache / "loras/l.safetensors", 200, {"where": "cache"})
    make_safetensors(comfyui_dir / "models/loras/bare.safetensors", 200)
    yaml_file = tmp_path / "cache.yaml"
    yaml_file.write_text(f"cache:\n  base_path: {cache}\n  is_default: true\n  loras: loras\n")
    proc = standin("--extra-model-paths-config", str(yaml_file))
    proc.wait_ready()
    assert proc.get("/view_metadata/loras?filename=l.safetensors") == (200, {"where": "cache"})
    assert proc.get("/view_metadata/loras?filename=bare.safetensors")[0] == 404
    assert proc.get("/view_metadata/loras?filename=missing.safetensors")[0] == 404
    assert proc.get("/view_metadata/loras?filename=l.ckpt")[0] == 404
    assert proc.get("/view_metadata/loras")[0] == 404


def test_flag_files_load_after_the_install_yaml_in_order_so_the_last_default_wins(
    standin: Start, comfyui_dir: Path, tmp_path: Path
) -> None:
    (comfyui_dir / "extra_model_paths.yaml").write_text("own:\n  is_default: true\n  vae: /own\n")
    first, second = tmp_path / "1.yaml", tmp_path / "2.yaml"
    first.write_text("one:\n  is_default: true\n  vae: /one\n")
    second.write_text("two:\n  is_default: true\n  vae: /two\n")
    proc = standin(
        "--extra-model-paths-config", str(first), "--extra-model-paths-config", str(second)
    )
    proc.wait_ready()
    status, folders = proc.get("/internal/folder_paths")
    assert status == 200
    assert folders["vae"] == [
        "/two",
        "/one",
        "/own",
        str(comfyui_dir / "models/vae"),
        str(comfyui_dir / "output/vae"),
    ]
    assert "Adding extra search path vae /two" in proc.output()


def test_a_list_value_in_a_flag_yaml_crashes_start_up_with_exit_1(
    standin: Start, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("c:\n  checkpoints:\n    - /a\n")
    proc = standin("--extra-model-paths-config", str(bad))
    assert proc.wait() == 1
    assert "AttributeError" in proc.errors()
    assert events(proc, "listening") == []
    assert events(proc, "exit")[-1]["code"] == 1


@pytest.mark.parametrize(
    "args", [("--highvram", "--lowvram"), ("--cpu", "--gpu-only"), ("--no-such-flag",)]
)
def test_conflicting_vram_flags_or_unknown_arguments_exit_2(
    standin: Start, args: tuple[str, ...]
) -> None:
    proc = standin(*args)
    assert proc.wait() == 2
    assert "usage:" in proc.errors()


def test_bare_listen_binds_all_interfaces_and_prints_each_address_once(standin: Start) -> None:
    proc = standin("--listen")
    proc.wait_ready()
    out = proc.output()
    assert out.count(f"To see the GUI go to: http://0.0.0.0:{proc.port}\n") == 1
    assert out.count(f"To see the GUI go to: http://[::]:{proc.port}\n") == 1
    assert out.count("Starting server\n") == 1
    assert events(proc, "listening")[0]["addresses"] == ["0.0.0.0", "::"]


def test_hang_stalls_ordinary_requests_until_unhang(standin: Start) -> None:
    proc = standin()
    proc.wait_ready()
    assert proc.post("/standin/hang") == (200, {"hanging": True})
    with pytest.raises(TimeoutError):
        proc.get("/queue", timeout=0.5)
    assert proc.post("/standin/unhang") == (200, {"hanging": False})
    assert proc.get("/queue")[0] == 200


def test_sigint_stops_the_server_even_while_requests_hang(standin: Start) -> None:
    proc = standin()
    proc.wait_ready()
    proc.post("/standin/hang")
    with pytest.raises(TimeoutError):
        proc.get("/system_stats", timeout=0.3)
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == 0
    assert "Stopped server" in proc.output()


def test_load_resolves_like_comfyui_touches_the_data_and_records_the_path(
    standin: Start, comfyui_dir: Path, make_safetensors: MakeST
) -> None:
    model = make_safetensors(comfyui_dir / "models/unet/big.safetensors", 3 * 1024 * 1024)
    proc = standin()
    proc.wait_ready()
    status, body = proc.post("/standin/load?folder=diffusion_models&filename=big.safetensors")
    assert status == 200
    assert (body["path"], body["bytes"]) == (str(model), 3 * 1024 * 1024)
    assert body["seconds"] >= 0
    assert [e["path"] for e in events(proc, "load")] == [str(model)]
    assert proc.post("/standin/load?folder=vae&filename=none.safetensors")[0] == 404


def test_sigint_prints_stopped_server_once_and_exits_0(standin: Start) -> None:
    proc = standin()
    proc.wait_ready()
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == 0
    assert proc.output().count("Stopped server\n") == 1
    assert events(proc, "signal")[0]["signum"] == signal.SIGINT
    assert events(proc, "exit")[-1]["code"] == 0


def test_sigterm_kills_without_cleanup(standin: Start) -> None:
    proc = standin()
    proc.wait_ready()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == -signal.SIGTERM
    assert "Stopped server" not in proc.output()
    assert events(proc, "exit")[-1]["code"] == -signal.SIGTERM


def test_sigint_during_the_startup_delay_kills_before_the_port_opens(standin: Start) -> None:
    proc = standin(env={"STANDIN_STARTUP_DELAY": "60"})
    wait_for(lambda: "ComfyUI version" in proc.output(), 10, "the version line", step=0.02)
    with pytest.raises(OSError, match="refused"):
        proc.get("/system_stats", timeout=1.0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == -signal.SIGINT
    assert events(proc, "listening") == []


def test_ignored_sigterm_is_recorded_and_the_server_keeps_answering(standin: Start) -> None:
    proc = standin(env={"STANDIN_IGNORE": "TERM,INT"})
    proc.wait_ready()
    proc.send_signal(signal.SIGTERM)
    proc.send_signal(signal.SIGINT)
    wait_for(lambda: len(events(proc, "signal")) == 2, 10, "both signals recorded", step=0.02)
    assert proc.get("/queue")[0] == 200
    assert {e["signum"] for e in events(proc, "signal")} == {signal.SIGTERM, signal.SIGINT}
    assert all(e["ignored"] for e in events(proc, "signal"))


def test_exit_code_knob_exits_at_once_with_that_code(standin: Start) -> None:
    proc = standin(env={"STANDIN_EXIT_CODE": "42"})
    assert proc.wait() == 42
    assert [e["event"] for e in proc.records()] == ["start", "exit"]
    assert events(proc, "exit")[0]["code"] == 42


def test_start_record_shows_what_the_parent_passed_down(comfyui_dir: Path) -> None:
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)

    def block_usr1() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})

    proc = StandinProcess(
        comfyui_dir,
        env={"STANDIN_MARK": "yes"},
        popen={"pass_fds": (write_end,), "preexec_fn": block_usr1},
    )
    try:
        with proc:
            proc.wait_ready()
            (start,) = events(proc, "start")
    finally:
        os.close(read_end)
        os.close(write_end)
    assert start["pid"] == proc.pid
    assert start["pgid"] == start["sid"] == proc.pid
    assert start["ppid"] == os.getpid()
    assert start["cwd"] == str(comfyui_dir)
    assert start["env"]["STANDIN_MARK"] == "yes"
    assert sorted(start["fds"]) == [0, 1, 2, write_end]
    assert start["sigblk"] == 1 << (signal.SIGUSR1 - 1)
    assert start["argv"][0] == "main.py"


def test_orphans_are_reparented_away_from_the_standin(standin: Start) -> None:
    proc = standin()
    proc.wait_ready()
    status, body = proc.post("/standin/orphans?n=20")
    assert status == 200
    pids = body["pids"]
    assert len(set(pids)) == 20
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            continue  # already reaped by whoever adopted it
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        assert ppid != proc.pid


def test_escapee_leaves_the_session_and_survives_sigterm(standin: Start) -> None:
    proc = standin()
    proc.wait_ready()
    status, body = proc.post("/standin/escape")
    assert status == 200
    pid = body["pid"]
    assert events(proc, "escape")[0]["pid"] == pid
    assert os.getsid(pid) == pid
    assert os.getpgid(pid) != proc.pid
    assert _ignored_mask(pid) & (1 << (signal.SIGTERM - 1))
    os.kill(pid, signal.SIGTERM)
    assert proc.get("/queue")[0] == 200
    assert _state(pid) not in {"", "Z"}
    proc.stop()
    wait_for(lambda: _state(pid) in {"", "Z"}, 10, f"pid {pid} to die", step=0.02)


def _ignored_mask(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigIgn:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigIgn line for pid {pid}")


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]


def test_runs_under_the_system_python_with_the_standard_library_only(tmp_path: Path) -> None:
    system_python = Path("/usr/bin/python3")
    if not system_python.exists():
        pytest.skip("no /usr/bin/python3 on this machine")
    install = make_comfyui_dir(tmp_path / "ComfyUI")
    with StandinProcess(install, python=str(system_python)) as proc:
        proc.wait_ready()
        assert proc.get("/models/checkpoints") == (200, [])
