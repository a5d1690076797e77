"""Real volume layouts as processes: ``comfy-init start`` as PID 1 warms models kept in every
layout and ComfyUI (the stand-in) loads each from the cache, with the skipped lines in the
report and the metrics; ``comfy-init warmup`` warms every good line, then exits 3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import warmup_tree
from comfy_init.warmup.report import read_report
from harness import boots as h
from harness.loopback import free_port
from harness.pid1 import Pid1
from harness.polling import wait_for

pytestmark = [pytest.mark.timeout(90), pytest.mark.process]

KiB = 1024
COMFY_INIT = Path(sys.executable).with_name("comfy-init")
# Root reads any file; without these capabilities a mode-000 file cannot be opened.
NO_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search",
          "--inh-caps=-dac_override,-dac_read_search")  # fmt: skip


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_warmup_warms_every_good_line_between_bad_ones_of_each_kind_then_exits_3(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    tree = warmup_tree.Tree(tmp_path)
    good = {
        rel: put(tree.models / rel, rel.encode())
        for rel in ("checkpoints/a.safetensors", "loras/b.safetensors", "upscale_models/d.pth")
    }
    locked = put(tree.models / "embeddings" / "locked.safetensors", b"unreadable")
    locked.chmod(0)
    elsewhere = put(tmp_path_factory.mktemp("elsewhere") / "secret.safetensors", b"secret")
    (tree.models / "vae").mkdir()
    (tree.models / "vae" / "out.safetensors").symlink_to(elsewhere)
    (tree.models / "vae" / "loop.safetensors").symlink_to(tree.models / "vae" / "loop.safetensors")
    conf = tree.config(
        "checkpoints/a.safetensors\n"
        "checkpoints\n"  # 2: no file
        "loras/../../etc/passwd\n"  # 3: '..'
        "loras/b.safetensors\n"
        "/etc/passwd\n"  # 5: absolute
        "vae/out.safetensors\n"  # 6: a link out of the volume
        "embeddings/locked.safetensors\n"  # 7: cannot be opened: failed, the rest goes on
        "vae/loop.safetensors\n"  # 8: a loop
        "lo\x01ras/x.safetensors\n"  # 9: a control character
        "upscale_models/d.pth\n"
    )
    env = {**tree.env, "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json"}
    result = subprocess.run(
        [*NO_DAC, str(COMFY_INIT), "warmup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    for rel, source in good.items():
        assert (tree.cache / rel).read_bytes() == source.read_bytes()
    failed = json.loads(result.stderr.splitlines()[-1])
    assert failed["event"] == "failed"
    for number in (2, 3, 5, 6, 8, 9):
        assert f"{conf}:{number}: warmup config line" in failed["error"]
    assert str(elsewhere) in failed["error"]
    report = read_report(tree.run / "warmup-report.json")
    assert report is not None
    assert [(r.name, r.status) for r in report.files] == [
        ("a.safetensors", "copied"),
        ("b.safetensors", "copied"),
        ("locked.safetensors", "failed"),
        ("d.pth", "copied"),
    ]
    assert [(s.line.rsplit(":", 1)[1], s.reason) for s in report.skipped] == [
        ("2", "invalid"),
        ("3", "invalid"),
        ("5", "invalid"),
        ("6", "link_outside"),
        ("8", "link_loop"),
        ("9", "invalid"),
    ]
    assert not (tree.cache / "vae").exists() or list((tree.cache / "vae").iterdir()) == []


# -- comfy-init start as PID 1 --------------------------------------------------------------
@pytest.fixture
def start(tmp_path: Path, comfyui_dir: Path) -> Iterator[Callable[..., Pid1]]:
    yield from h.runner(tmp_path, comfyui_dir)


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_start_warms_each_layout_and_comfyui_loads_every_kind_from_the_cache(
    start: Callable[..., Pid1],
    tmp_path: Path,
    comfyui_dir: Path,
    make_safetensors: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    models, store = comfyui_dir / "models", tmp_path / "workspace_models"
    # /workspace/models via the user's YAML: relative base_path, a multi-line key, legacy unet.
    (comfyui_dir / "extra_model_paths.yaml").write_text(
        "runpod:\n  base_path: ../workspace_models\n  checkpoints: checkpoints\n"
        "  loras: |\n    loras\n    loras_extra\n  unet: unet\n"
    )
    sources = {
        "vae/plain.safetensors": make_safetensors(models / "vae" / "plain.safetensors", KiB),
        "checkpoints/s.safetensors": make_safetensors(tmp_path / "shared" / "s.safetensors", KiB),
        "checkpoints/y.safetensors": make_safetensors(store / "checkpoints" / "y.safetensors", KiB),
        "loras/l.safetensors": make_safetensors(store / "loras_extra" / "l.safetensors", KiB),
        "unet/u.safetensors": make_safetensors(store / "unet" / "u.safetensors", KiB),
    }
    (models / "checkpoints" / "s.safetensors").symlink_to(sources["checkpoints/s.safetensors"])
    not_listed = make_safetensors(store / "loras" / "n.safetensors", KiB)
    elsewhere = put(tmp_path_factory.mktemp("elsewhere") / "o.safetensors", b"off the volume")
    (models / "vae" / "out.safetensors").symlink_to(elsewhere)
    (tmp_path / "warmup_models.conf").write_text(
        "vae/plain.safetensors\ncheckpoints/s.safetensors\ncheckpoints/y.safetensors\n"
        "loras/l.safetensors\nloras/../x.safetensors\nunet/u.safetensors\nvae/out.safetensors\n"
    )
    metrics_port = free_port()
    run = start(
        env={"METRICS": "1", "METRICS_ADDR": "127.0.0.1", "METRICS_PORT": str(metrics_port)}
    )
    run.wait_event("comfyui_ready", 40)
    (skipped_event,) = run.find_events("warmup_skipped_lines")
    assert len(skipped_event["problems"]) == 2
    cache = tmp_path / "cache"
    for rel, source in sources.items():
        type_, name = rel.split("/", 1)
        folder = "diffusion_models" if type_ == "unet" else type_  # ComfyUI's name for it
        loaded = h.http(run, "POST", f"/standin/load?folder={folder}&filename={name}")
        assert loaded["path"] == str(cache / rel), rel
        assert Path(loaded["path"]).read_bytes() == source.read_bytes()
        assert not Path(loaded["path"]).is_symlink()
    assert not (cache / "vae" / "out.safetensors").exists()
    report = read_report(tmp_path / "run" / "warmup-report.json")
    assert report is not None
    assert [s.reason for s in report.skipped] == ["invalid", "link_outside"]

    wait_for(lambda: _answers(metrics_port), 20, "the metrics sidecar to answer", step=0.3)
    loaded = h.http(run, "POST", "/standin/load?folder=loras&filename=n.safetensors")
    assert loaded["path"] == str(not_listed)  # not in the config: read where the YAML points

    def volume_opens() -> float:
        key = ("comfyinit_model_opens_total", (("location", "volume"), ("type", "loras")))
        return scrape(metrics_port).get(key, 0.0)

    wait_for(lambda: volume_opens() >= 1, 20, "the open in the user's folder to count")
    samples = scrape(metrics_port)
    for reason, count in (("invalid", 1), ("link_outside", 1), ("link_loop", 0), ("user_yaml", 0)):
        assert samples[("comfyinit_warmup_skipped_lines", (("reason", reason),))] == count
    run.signal(signal.SIGTERM)
    assert run.wait_exit(15) == 0


def _answers(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True
