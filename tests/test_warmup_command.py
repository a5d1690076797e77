"""``comfy-init warmup`` as a real process: signals, kill -9, exit codes, and the
--list/--status/--clean/--setup-only outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comfy_init.files.durable import PARTIAL_SUFFIX
from comfy_init.warmup.report import read_report
from harness.polling import wait_for
from harness.standin import StandinProcess
from warmup_tree import Tree

COMFY_INIT = Path(sys.executable).with_name("comfy-init")
KiB = 1024
MiB = 1024 * KiB

pytestmark = pytest.mark.timeout(90)


class Setup(Tree):
    """A tree for ``comfy-init warmup`` run as a subprocess."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.env |= {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json"}
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            [str(COMFY_INIT), "warmup", *args],
            env={**self.env, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.procs.append(proc)
        return proc

    def run_cmd(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        proc = self.start(*args, **env)
        out, err = proc.communicate(timeout=60)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out.decode(), err.decode())

    def partials(self) -> list[Path]:
        return [p for p in self.cache.rglob("*") if p.name.endswith(PARTIAL_SUFFIX)]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    s = Setup(tmp_path)
    yield s
    for proc in s.procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_stop_signal_during_warmup_removes_partial_file_and_exits_128_plus_signal(
    setup: Setup, signum: int, code: int
) -> None:
    setup.model("checkpoints/big.safetensors", 4 * MiB)
    setup.model("loras/next.safetensors", 1 * MiB)
    setup.config("checkpoints/big.safetensors\nloras/next.safetensors\n")
    proc = setup.start(WARMUP_MAX_MBPS="1", WARMUP_STREAMS="2")
    wait_for(lambda: setup.partials() != [], 30, "a partial copy", step=0.02)
    proc.send_signal(signum)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == code, err.decode()
    assert setup.partials() == []
    assert not (setup.cache / "checkpoints" / "big.safetensors").exists()
    report = read_report(setup.run / "warmup-report.json")
    assert report is not None
    assert report.state == "interrupted"
    assert {r.status for r in report.files} == {"interrupted"}
    assert b"warmup_stopping" in err


def test_kill_9_mid_copy_leaves_only_a_hidden_temp_and_the_next_run_completes(setup: Setup) -> None:
    src = setup.model("checkpoints/big.safetensors", 4 * MiB)
    setup.config("checkpoints/big.safetensors\n")
    proc = setup.start(WARMUP_MAX_MBPS="1")
    wait_for(lambda: setup.partials() != [], 30, "a partial copy", step=0.02)
    proc.kill()
    proc.communicate(timeout=10)
    (temp,) = setup.partials()
    assert temp.name.startswith(".big.safetensors.")
    visible = [
        p.name for p in (setup.cache / "checkpoints").iterdir() if not p.name.startswith(".")
    ]
    assert visible == []  # no file under a model's name that is not a complete copy
    done = setup.run_cmd()
    assert done.returncode == 0, done.stderr
    assert (setup.cache / "checkpoints" / "big.safetensors").read_bytes() == src.read_bytes()
    assert setup.partials() == []
    assert "partial_removed" in done.stderr


def test_bad_config_line_exits_3_naming_file_and_line_after_warming_the_good_ones(
    setup: Setup,
) -> None:
    setup.model("loras/x.safetensors", KiB)
    conf = setup.config("loras/x.safetensors\n/etc/passwd\n")
    result = setup.run_cmd()
    assert result.returncode == 3
    assert f"{conf}:2: warmup config line '/etc/passwd' is an absolute path outside" in (
        result.stderr
    )
    assert (setup.cache / "loras" / "x.safetensors").read_bytes() == (
        setup.models / "loras" / "x.safetensors"
    ).read_bytes()


def test_exit_5_when_a_file_does_not_fit_the_free_space_minus_reserve(setup: Setup) -> None:
    setup.model("loras/x.safetensors", KiB)
    setup.config("loras/x.safetensors\n")
    result = setup.run_cmd(CACHE_RESERVE_MB=str(10**9))  # a petabyte must stay free
    assert result.returncode == 5, result.stderr
    assert "file_skipped_space" in result.stderr
    # The YAML still names the type, so ComfyUI finds a copy once one fits.
    assert f"loras: {setup.cache / 'loras'}" in (setup.run / "extra_model_paths.yaml").read_text()


def test_an_explicit_config_argument_is_used_and_a_clean_run_exits_0(setup: Setup) -> None:
    setup.model("vae/v.pt", KiB)
    conf = setup.root / "elsewhere.conf"
    conf.write_text("vae/v.pt\n")
    result = setup.run_cmd(str(conf))
    assert result.returncode == 0, result.stderr
    assert (setup.cache / "vae" / "v.pt").exists()
    assert "warmup_finished" in result.stderr


def test_list_json_shows_each_line_its_files_size_volume_and_cache_state(setup: Setup) -> None:
    setup.model("checkpoints/a.safetensors", 2 * KiB)
    setup.model("checkpoints/b.safetensors", 3 * KiB)
    conf = setup.config("checkpoints/a.safetensors\ncheckpoints/*.safetensors\nvae/none.pt\n")
    assert setup.run_cmd().returncode == 0
    setup.model("checkpoints/b.safetensors", 5 * KiB, seed=1)  # now stale in the cache
    result = setup.run_cmd("--list", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["config"] == str(conf)
    assert [(e["line"], e["entry"], e["matched"]) for e in data["entries"]] == [
        (f"{conf}:1", "checkpoints/a.safetensors", True),
        (f"{conf}:2", "checkpoints/*.safetensors", True),
        (f"{conf}:3", "vae/none.pt", False),
    ]
    assert [
        (f["name"], f["size"], f["on_volume"], f["cache"]) for f in data["entries"][1]["files"]
    ] == [("b.safetensors", 5 * KiB, True, "stale")]
    assert data["entries"][0]["files"][0]["cache"] == "hit"
    text = setup.run_cmd("--list").stdout
    assert "vae/none.pt" in text
    assert "stale" in text


def test_status_json_reports_cached_stale_missing_extra_sizes_free_space_and_residency(
    setup: Setup,
) -> None:
    setup.model("loras/a.safetensors", 64 * KiB)
    setup.model("loras/b.safetensors", 8 * KiB)
    setup.config("loras/a.safetensors\nloras/b.safetensors\n")
    assert setup.run_cmd().returncode == 0
    setup.model("loras/b.safetensors", 9 * KiB)  # stale
    setup.model("loras/c.safetensors", KiB)
    (setup.comfyui / "warmup_models.conf").write_text("loras/*\n")  # c: configured, not cached
    (setup.cache / "loras" / "download.safetensors").write_bytes(b"x" * 100)  # extra
    result = setup.run_cmd("--status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    states = {f["name"]: f["state"] for f in data["files"]}
    assert states == {
        "a.safetensors": "cached",
        "b.safetensors": "stale",
        "c.safetensors": "missing",
        "download.safetensors": "extra",
    }
    assert data["counts"] == {"cached": 1, "stale": 1, "missing": 1, "extra": 1}
    assert data["cache_bytes"] == 64 * KiB + 8 * KiB + 100
    assert data["free_bytes"] > 0
    a = next(f for f in data["files"] if f["name"] == "a.safetensors")
    assert a["cache_size"] == 64 * KiB
    assert 0 <= a["resident_bytes"] <= 64 * KiB
    assert data["resident_bytes"] >= a["resident_bytes"]
    assert "1 cached, 1 stale, 1 missing" in setup.run_cmd("--status").stdout


def test_clean_empties_the_cache_but_keeps_the_type_directories(setup: Setup) -> None:
    setup.model("checkpoints/SDXL/a.safetensors", 2 * KiB)
    setup.model("loras/b.safetensors", KiB)
    setup.config("checkpoints/**\nloras/*\n")
    assert setup.run_cmd().returncode == 0
    result = setup.run_cmd("--clean")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in setup.cache.iterdir()) == ["checkpoints", "loras"]
    assert list((setup.cache / "checkpoints").iterdir()) == []
    assert list((setup.cache / "loras").iterdir()) == []
    assert "removed 2 files" in result.stdout
    assert setup.models.joinpath("loras/b.safetensors").exists()  # the volume is untouched


def test_setup_only_writes_the_yaml_and_prints_the_comfyui_flag(setup: Setup) -> None:
    setup.model("unet/u.safetensors", KiB)
    setup.config("unet/u.safetensors\n")
    result = setup.run_cmd("--setup-only")
    assert result.returncode == 0, result.stderr
    yaml_path = setup.run / "extra_model_paths.yaml"
    assert f"--extra-model-paths-config {yaml_path}" in result.stdout
    assert "first" in result.stdout
    assert f"unet: {setup.cache / 'unet'}" in yaml_path.read_text()
    assert not (setup.cache / "unet" / "u.safetensors").exists()  # nothing copied


def test_copy_only_warms_but_leaves_the_yaml_as_it_was(setup: Setup) -> None:
    src = setup.model("loras/x.safetensors", KiB)
    setup.config("loras/x.safetensors\n")
    result = setup.run_cmd("--copy-only")
    assert result.returncode == 0, result.stderr
    assert (setup.cache / "loras" / "x.safetensors").read_bytes() == src.read_bytes()
    yaml_path = setup.run / "extra_model_paths.yaml"
    assert not yaml_path.exists()
    assert setup.run_cmd("--setup-only").returncode == 0
    before = yaml_path.stat()
    setup.model("vae/v.pt", KiB)
    setup.config("loras/x.safetensors\nvae/v.pt\n")  # a new type: ComfyUI sees it at its start
    result = setup.run_cmd("--copy-only")
    assert result.returncode == 0, result.stderr
    assert (setup.cache / "vae" / "v.pt").exists()
    after = yaml_path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert "vae" not in yaml_path.read_text()
    assert "model_paths_written" not in result.stderr


def test_json_without_list_or_status_is_a_usage_error(setup: Setup) -> None:
    setup.config("loras/x\n")
    result = setup.run_cmd("--json")
    assert result.returncode == 2
    assert "--json" in result.stderr


@pytest.mark.process
def test_after_warmup_comfyui_resolves_the_cached_copy_first_and_the_volume_for_the_rest(
    tmp_path: Path,
    comfyui_dir: Path,
    standin: Callable[..., StandinProcess],
    make_safetensors: Callable[..., Path],
) -> None:
    s = Setup(tmp_path)
    s.comfyui, s.models = comfyui_dir, comfyui_dir / "models"
    s.env["COMFYUI_PATH"] = str(comfyui_dir)
    make_safetensors(
        s.models / "checkpoints" / "warm.safetensors", 4096, metadata={"copy": "first"}
    )
    make_safetensors(
        s.models / "checkpoints" / "cold.safetensors", 4096, metadata={"copy": "volume"}
    )
    s.config("checkpoints/warm.safetensors\n")
    assert s.run_cmd().returncode == 0
    # The volume copy changes after the warmup: a lookup that reaches the volume would see it.
    make_safetensors(
        s.models / "checkpoints" / "warm.safetensors", 4096, metadata={"copy": "second"}
    )
    proc = standin("--extra-model-paths-config", str(s.run / "extra_model_paths.yaml"))
    proc.wait_ready()
    status, meta = proc.get("/view_metadata/checkpoints?filename=warm.safetensors")
    assert status == 200
    assert meta["copy"] == "first"  # the cache copy
    status, meta = proc.get("/view_metadata/checkpoints?filename=cold.safetensors")
    assert (status, meta["copy"]) == (200, "volume")
    _, paths = proc.get("/internal/folder_paths")
    assert paths["checkpoints"][0] == str(s.cache / "checkpoints")


@pytest.mark.process
def test_a_type_whose_first_file_lands_after_comfyui_started_loads_from_the_cache(
    tmp_path: Path,
    comfyui_dir: Path,
    standin: Callable[..., StandinProcess],
    make_safetensors: Callable[..., Path],
) -> None:
    s = Setup(tmp_path)
    s.comfyui, s.models = comfyui_dir, comfyui_dir / "models"
    s.env["COMFYUI_PATH"] = str(comfyui_dir)
    s.config("loras/*\n")
    (s.models / "loras").mkdir(parents=True, exist_ok=True)
    assert s.run_cmd().returncode == 0  # no LoRA yet: the line matches nothing
    proc = standin("--extra-model-paths-config", str(s.run / "extra_model_paths.yaml"))
    proc.wait_ready()
    make_safetensors(s.models / "loras" / "new.safetensors", 4096, metadata={"copy": "first"})
    assert s.run_cmd("--copy-only").returncode == 0
    # The volume copy changes after the warmup: a lookup that reaches the volume would see it.
    make_safetensors(s.models / "loras" / "new.safetensors", 4096, metadata={"copy": "second"})
    status, meta = proc.get("/view_metadata/loras?filename=new.safetensors")
    assert (status, meta["copy"]) == (200, "first")  # the cache copy, without a restart
