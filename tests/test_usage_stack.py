"""The learned warm list through the real stack, as a fleet would use it: ``comfy-init start``
as PID 1 (warmup, supervisord, the ComfyUI stand-in, the metrics sidecar) with a config of
``@auto``, two pods on one volume, ``warmup --suggest``, then boots that warm what was used."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from comfy_init.usage import journal
from comfy_init.usage.records import Boot, Open
from harness import boots as h
from harness.loopback import free_port
from harness.loopback import http as get
from harness.pid1 import Pid1

pytestmark = [pytest.mark.process, pytest.mark.root, pytest.mark.timeout(240)]

MiB = 1024 * 1024
MOST = ("checkpoints", "most.safetensors", 3 * MiB)  # pod a loads it three times
SECOND = ("loras", "second.safetensors", 1 * MiB)  # pod a, twice
OTHER = ("checkpoints", "other.safetensors", 2 * MiB)  # pod b, once
NEVER = ("vae", "never.safetensors", 1 * MiB)  # nobody


class Fleet:
    """Pods sharing ``comfyui_dir`` (the volume), each with its own cache and run dir."""

    def __init__(self, tmp_path: Path, comfyui_dir: Path) -> None:
        self.tmp = tmp_path
        self.comfyui = comfyui_dir
        self.config = tmp_path / "warmup_models.conf"
        self.config.write_text("@auto\n", encoding="utf-8")
        self.usage = comfyui_dir / ".comfy-init" / "usage"
        self.runs: list[Pid1] = []

    def env(self, pod: str, **extra: str) -> dict[str, str]:
        env = h.base_env(self.tmp / pod, self.comfyui, free_port())
        env.update(
            RUNPOD_POD_ID=pod,
            WARMUP_CONFIG=str(self.config),
            METRICS="1",
            METRICS_ADDR="127.0.0.1",
            METRICS_PORT=str(free_port()),
            WATCHDOG="0",
            WRITEBACK="0",
            **extra,
        )
        return env

    def boot(self, pod: str, *args: str, **extra: str) -> Pid1:
        run = Pid1(self.tmp / pod, self.env(pod, **extra), list(args))
        self.runs.append(run)
        return run.start()

    def cache_files(self, pod: str) -> list[str]:
        cache = self.tmp / pod / "cache"
        return sorted(str(p.relative_to(cache)) for p in cache.rglob("*") if p.is_file())

    def report(self, pod: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.tmp / pod / "run" / "warmup-report.json").read_text()
        )
        return data


@pytest.fixture
def fleet(tmp_path: Path, comfyui_dir: Path) -> Iterator[Fleet]:
    f = Fleet(tmp_path, comfyui_dir)
    yield f
    for run in f.runs:
        run.close()


def scraped(run: Pid1, name: str, **labels: str) -> float | None:
    """The value of one series on the pod's sidecar; None while the sidecar does not answer
    or has no such series."""
    try:
        status, text = get(int(run.env["METRICS_PORT"]), "/metrics")
    except OSError:
        return None
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def load(run: Pid1, model: tuple[str, str, int], times: int = 1) -> list[str]:
    """Load ``model`` through the stand-in ``times`` times, each once the sidecar has counted
    the one before (the kernel merges identical inotify events that follow each other
    unread, as no real ComfyUI loads do)."""

    def counted() -> float:
        return sum(
            scraped(run, "comfyinit_model_opens_total", type=model[0], location=where) or 0.0
            for where in ("cache", "volume")
        )

    paths = []
    for _ in range(times):
        before = counted()
        path = h.http(run, "POST", f"/standin/load?folder={model[0]}&filename={model[1]}")["path"]
        h.wait_for(lambda n=before: counted() > n, 10, f"the sidecar to count {model[1]}")
        paths.append(path)
    return paths


def watching(run: Pid1) -> None:
    """Wait until the pod's sidecar watches every folder of the volume and of its cache (a
    load before that would not be seen)."""
    for location, root in (("volume", "COMFYUI_PATH"), ("cache", "CACHE_PATH")):
        top = Path(run.env[root]) / ("models" if location == "volume" else "")
        folders = 1 + sum(1 for p in top.rglob("*") if p.is_dir())
        h.wait_for(
            lambda loc=location, n=folders: (
                scraped(run, "comfyinit_inotify_watches", location=loc) == n
            ),
            30,
            f"the sidecar to watch the {location}",
        )


def opens_in(path: Path) -> list[tuple[str, str, str]]:
    return [(r.type, r.name, r.location) for r in journal.read(path).records if isinstance(r, Open)]


def test_pods_record_what_comfyui_loads_and_later_boots_warm_exactly_that(
    fleet: Fleet, make_safetensors: Callable[..., Path]
) -> None:
    models = fleet.comfyui / "models"
    for type_, name, size in (MOST, SECOND, OTHER, NEVER):
        make_safetensors(models / type_ / name, size)

    # pod a: the first boot has no usage to go by, so @auto warms nothing
    a = fleet.boot("pod-a")
    a.wait_event("comfyui_ready", 60)
    watching(a)
    assert fleet.report("pod-a")["files"] == []
    assert fleet.report("pod-a")["auto"]["models"] == 0
    paths = load(a, MOST, 3) + load(a, SECOND, 2)
    assert all(p.startswith(str(models)) for p in paths)  # read from the volume
    # batched every few seconds: the sidecar counts what it appended
    h.wait_for(
        lambda: scraped(a, "comfyinit_usage_records_written_total") == 6.0,  # boot + 5 opens
        30,
        "pod a's records appended",
    )
    assert scraped(a, "comfyinit_usage_journal_write_errors_total") == 0.0
    assert a.stop() == 0
    a_journal = journal.path_for(fleet.usage, "pod-a")
    recs = journal.read(a_journal).records
    assert isinstance(recs[0], Boot)
    assert (
        opens_in(a_journal)
        == [("checkpoints", "most.safetensors", "volume")] * 3
        + [("loras", "second.safetensors", "volume")] * 2
    )

    # pod b, on the same volume: warms what pod a used, then loads another model
    b = fleet.boot("pod-b")
    b.wait_event("comfyui_ready", 60)
    watching(b)
    assert fleet.cache_files("pod-b") == [
        "checkpoints/most.safetensors",
        "loras/second.safetensors",
    ]
    assert load(b, MOST)[0].startswith(str(fleet.tmp / "pod-b" / "cache"))  # from its cache
    assert load(b, OTHER)[0].startswith(str(models))
    assert b.stop() == 0  # the last batch is written at stop
    assert opens_in(journal.path_for(fleet.usage, "pod-b")) == [
        ("checkpoints", "most.safetensors", "cache"),
        ("checkpoints", "other.safetensors", "volume"),
    ]
    assert opens_in(a_journal)[-1] == ("loras", "second.safetensors", "volume")  # untouched

    # warmup --suggest: the models loaded, most used first, with their opens and pods
    suggest = [str(h.PYTHON), "-m", "comfy_init", "warmup", "--suggest"]
    env = fleet.env("pod-c")
    text = subprocess.run(suggest, env=env, capture_output=True, text=True, timeout=60, check=True)
    lines = [ln for ln in text.stdout.splitlines() if not ln.startswith("#")]
    assert [ln.split()[0] for ln in lines] == [
        "checkpoints/most.safetensors",
        "loras/second.safetensors",
        "checkpoints/other.safetensors",
    ]
    assert "# 4 opens, last used" in lines[0]
    assert "2 pods" in lines[0]
    data = json.loads(
        subprocess.run(
            [*suggest, "--json"], env=env, capture_output=True, text=True, timeout=60, check=True
        ).stdout
    )
    assert [(m["opens"], m["pods"], m["size"]) for m in data["models"]] == [
        (4, 2, MOST[2]), (2, 1, SECOND[2]), (1, 1, OTHER[2]),
    ]  # fmt: skip

    # the next boot warms exactly those, most used first, and says they were @auto's
    c = fleet.boot("pod-c", "--warmup-only")
    assert c.wait_exit(60) == 0
    report = fleet.report("pod-c")
    assert [(f["type"], f["name"], f["status"], f["auto"]) for f in report["files"]] == [
        ("checkpoints", "most.safetensors", "copied", True),
        ("loras", "second.safetensors", "copied", True),
        ("checkpoints", "other.safetensors", "copied", True),
    ]
    assert fleet.cache_files("pod-c") == [
        "checkpoints/most.safetensors",
        "checkpoints/other.safetensors",
        "loras/second.safetensors",
    ]
    assert report["auto"]["models"] == 3

    # a cap too small for all of them: only the most used
    d = fleet.boot("pod-d", "--warmup-only", WARMUP_AUTO_MAX_MB="3")
    assert d.wait_exit(60) == 0
    assert fleet.cache_files("pod-d") == ["checkpoints/most.safetensors"]
    assert fleet.report("pod-d")["auto"]["left_out"] == 2
