"""Model opens: ComfyUI loading from the cache or from the volume is counted; opens by
comfy-init itself (warmup copies, residency checks, write-back, a writer creating a file)
are not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from comfy_init import settings
from comfy_init.sidecar import tree_inotify
from comfy_init.sidecar.opens import OpenCounter
from comfy_init.sidecar.tree_inotify import TreeEvent, TreeInotify
from comfy_init.sidecar.wiring import Sidecar
from comfy_init.warmup.report import FileRecord, Report, read_report
from harness.loopback import free_port
from harness.polling import wait_for
from harness.standin import StandinProcess

pytestmark = pytest.mark.timeout(90)

MB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def report_with(opens: dict[str, int], pid: int = 1, started: float = 1.0) -> Report:
    files = [
        FileRecord("checkpoints", Path(src).name, src, "/c/" + Path(src).name, 1, source_opens=n)
        for src, n in opens.items()
    ]
    return Report("running", pid, started, "conf", "/v", "/c", files=files)


# --- the counter alone


def test_an_open_nobody_announced_is_comfyuis() -> None:
    counter = OpenCounter()
    assert counter.on_open("/c/checkpoints/a.safetensors", "checkpoints", "cache") == "comfyui"
    opens, discounted = counter.snapshot()
    assert opens == {("checkpoints", "cache"): 1, ("checkpoints", "volume"): 0}
    assert discounted == {}


def test_the_sidecars_own_open_is_discounted_once() -> None:
    counter = OpenCounter()
    counter.expect_own_open("/c/loras/a.safetensors")
    assert counter.on_open("/c/loras/a.safetensors", "loras", "cache") == "sidecar"
    assert counter.on_open("/c/loras/a.safetensors", "loras", "cache") == "comfyui"
    assert counter.snapshot()[1] == {("cache", "sidecar"): 1}


def test_an_announcement_no_open_followed_expires() -> None:
    clock = Clock()
    counter = OpenCounter(clock=clock, own_ttl=30.0)
    counter.expect_own_open("/c/loras/a.safetensors")
    clock.now += 31
    assert counter.on_open("/c/loras/a.safetensors", "loras", "cache") == "comfyui"


def test_the_open_right_after_a_create_is_the_writers() -> None:
    clock = Clock()
    counter = OpenCounter(clock=clock, create_ttl=5.0)
    counter.on_created("/c/loras/new.safetensors")
    assert counter.on_open("/c/loras/new.safetensors", "loras", "cache") == "writer"
    counter.on_created("/c/loras/late.safetensors")
    clock.now += 6
    assert counter.on_open("/c/loras/late.safetensors", "loras", "cache") == "comfyui"


def test_copier_opens_announced_in_the_report_are_consumed_then_later_opens_count() -> None:
    source = "/v/checkpoints/a.safetensors"
    current = {"report": report_with({source: 2})}
    counter = OpenCounter(read_report=lambda: current["report"])
    results = [counter.on_open(source, "checkpoints", "volume") for _ in range(3)]
    assert results == ["warmup", "warmup", "comfyui"]
    # the copier announces a third open: the report is read again when the open arrives
    current["report"] = report_with({source: 3})
    assert counter.on_open(source, "checkpoints", "volume") == "warmup"
    assert counter.snapshot()[1] == {("volume", "warmup"): 3}


def test_opens_announced_before_the_sidecar_watched_are_not_waited_for() -> None:
    source = "/v/checkpoints/a.safetensors"
    report = report_with({source: 4})
    counter = OpenCounter(read_report=lambda: report)
    counter.baseline(report)
    assert counter.on_open(source, "checkpoints", "volume") == "comfyui"


def test_a_new_warmup_run_starts_its_own_announcements() -> None:
    source = "/v/checkpoints/a.safetensors"
    current = {"report": report_with({source: 1}, pid=1)}
    counter = OpenCounter(read_report=lambda: current["report"])
    counter.baseline(current["report"])
    current["report"] = report_with({source: 1}, pid=2, started=50.0)
    assert counter.on_open(source, "checkpoints", "volume") == "warmup"


def test_cache_opens_never_consume_copier_announcements() -> None:
    path = "/v/checkpoints/a.safetensors"
    counter = OpenCounter(read_report=lambda: report_with({path: 5}))
    assert counter.on_open(path, "checkpoints", "cache") == "comfyui"


# --- inotify on the trees


def test_tree_inotify_reports_model_files_only_and_watches_new_folders(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "loras").mkdir(parents=True)
    events: list[TreeEvent] = []
    lock = threading.Lock()

    def handle(event: TreeEvent) -> None:
        with lock:
            events.append(event)

    trees = TreeInotify({"cache": cache, "volume": tmp_path / "absent"}, handle)
    trees.start()
    try:
        assert trees.ready.wait(10)
        (cache / "loras" / "notes.txt").write_text("x")
        (cache / "loras" / ".hidden.safetensors").write_bytes(b"x")
        (cache / "loras" / "a.safetensors.part").write_bytes(b"x")
        nested = cache / "loras" / "style"
        nested.mkdir()
        (nested / "b.safetensors").write_bytes(b"x")
        (cache / "loras" / "a.safetensors.part").rename(cache / "loras" / "a.safetensors")

        def seen() -> set[tuple[str, str]]:
            with lock:
                return {(e.kind, e.name) for e in events}

        wait_for(lambda: ("moved_to", "a.safetensors") in seen(), 10, "the rename")
        wait_for(
            lambda: {("create", "style/b.safetensors"), ("found", "style/b.safetensors")} & seen(),
            10,
            "the file in the new folder",
        )
        with lock:
            names = {e.name for e in events}
            assert {e.type for e in events} == {"loras"}
        assert names <= {"a.safetensors", "style/b.safetensors"}
        assert trees.watch_counts()["cache"] == 3  # cache, loras, loras/style
    finally:
        trees.stop()


def test_tree_inotify_survives_a_symlink_loop_and_watches_each_folder_once(tmp_path: Path) -> None:
    volume = tmp_path / "models"
    (volume / "checkpoints" / "sub").mkdir(parents=True)
    (volume / "checkpoints" / "sub" / "loop").symlink_to(volume / "checkpoints")
    trees = TreeInotify({"volume": volume}, lambda _event: None)
    trees.start()
    try:
        assert trees.ready.wait(10)
        assert trees.watch_counts() == {"volume": 3}  # models, checkpoints, sub
        assert trees.alive()
    finally:
        trees.stop()


# --- the sidecar with the stand-in and a real warmup


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def opens(port: int, type_: str, location: str) -> float | None:
    key = (("location", location), ("type", type_))
    return scrape(port).get(("comfyinit_model_opens_total", key))


def discounted(port: int, location: str, by: str) -> float:
    key = (("by", by), ("location", location))
    return scrape(port).get(("comfyinit_model_opens_discounted_total", key), 0.0)


class Pod:
    def __init__(self, comfyui_dir: Path, tmp_path: Path) -> None:
        self.volume = comfyui_dir / "models"
        self.cache = tmp_path / "cache"
        for t in ("checkpoints", "loras"):
            (self.cache / t).mkdir(parents=True)
        self.run_dir = tmp_path / "run"
        self.yaml = tmp_path / "cache_paths.yaml"
        self.yaml.write_text(
            "comfy_init_cache:\n  is_default: true\n"
            f"  checkpoints: {self.cache / 'checkpoints'}\n  loras: {self.cache / 'loras'}\n",
            encoding="utf-8",
        )
        self.env = {
            "COMFYUI_PATH": str(comfyui_dir),
            "CACHE_PATH": str(self.cache),
            "RUN_DIR": str(self.run_dir),
            "METRICS_ADDR": "127.0.0.1",
            "METRICS_PORT": str(free_port()),
            "COMFYUI_PORT": str(free_port()),
            "WATCHDOG": "0",
            "WRITEBACK": "0",
            "CACHE_RESERVE_MB": "0",
        }


@pytest.fixture
def pod(comfyui_dir: Path, tmp_path: Path) -> Pod:
    return Pod(comfyui_dir, tmp_path)


@pytest.fixture
def start_sidecar(pod: Pod) -> Iterator[Callable[[], Sidecar]]:
    """Start the sidecar once the test has laid out its files (the test's own opens while
    preparing are not ComfyUI's and happen before anything watches)."""
    started: list[Sidecar] = []

    def start() -> Sidecar:
        car = Sidecar(
            settings.from_env(pod.env), registry=CollectorRegistry(), cache_scan_seconds=0.3
        )
        started.append(car)
        car.start()
        assert car.inotify_trees.ready.wait(10)
        return car

    yield start
    for car in started:
        car.stop()


def load(proc: StandinProcess, folder: str, name: str) -> str:
    status, answer = proc.post(f"/standin/load?folder={folder}&filename={name}")
    assert status == 200, answer
    return str(answer["path"])


def test_loading_a_cached_model_counts_a_cache_open_and_a_volume_only_model_a_volume_open(
    pod: Pod,
    start_sidecar: Callable[[], Sidecar],
    standin: Callable[..., StandinProcess],
    make_safetensors: Callable[..., Path],
) -> None:
    p = pod
    make_safetensors(p.volume / "checkpoints" / "cached.safetensors", 2 * MB)
    shutil.copy2(p.volume / "checkpoints" / "cached.safetensors", p.cache / "checkpoints")
    make_safetensors(p.volume / "checkpoints" / "volonly.safetensors", MB)
    car = start_sidecar()
    proc = standin("--extra-model-paths-config", str(p.yaml))
    proc.wait_ready()
    # the sidecar's own residency checks open cached files; they must not count
    wait_for(lambda: discounted(car.port, "cache", "sidecar") >= 2, 20, "residency checks")
    assert opens(car.port, "checkpoints", "cache") in (None, 0.0)

    assert load(proc, "checkpoints", "cached.safetensors").startswith(str(p.cache))
    wait_for(lambda: opens(car.port, "checkpoints", "cache") == 1, 10, "the cache open")
    assert opens(car.port, "checkpoints", "volume") == 0

    assert load(proc, "checkpoints", "volonly.safetensors").startswith(str(p.volume))
    wait_for(lambda: opens(car.port, "checkpoints", "volume") == 1, 10, "the volume open")
    assert opens(car.port, "checkpoints", "cache") == 1


def test_a_warmup_copy_opens_volume_files_without_moving_either_counter(
    pod: Pod,
    start_sidecar: Callable[[], Sidecar],
    standin: Callable[..., StandinProcess],
    make_safetensors: Callable[..., Path],
    tmp_path: Path,
) -> None:
    p = pod
    make_safetensors(p.volume / "checkpoints" / "big.safetensors", 5 * MB)
    make_safetensors(p.volume / "loras" / "small.safetensors", MB // 2)
    car = start_sidecar()
    conf = tmp_path / "warmup_models.conf"
    conf.write_text("checkpoints/big.safetensors\nloras/*.safetensors\n", encoding="utf-8")
    env = {**os.environ, **p.env, "WARMUP_CONFIG": str(conf), "WARMUP_CHUNK_MB": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "comfy_init", "warmup"],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    report = read_report(p.run_dir / "warmup-report.json")
    assert report is not None
    copier_opens = sum(f.source_opens for f in report.files)
    assert copier_opens >= 3  # the 5 MiB file was read as several ranges, each its own open

    # ComfyUI loads the fresh copy; events arrive in order, so once this open is counted
    # every open made by the warmup has been seen too
    proc = standin("--extra-model-paths-config", str(p.yaml))
    proc.wait_ready()
    assert load(proc, "checkpoints", "big.safetensors").startswith(str(p.cache))
    wait_for(lambda: opens(car.port, "checkpoints", "cache") == 1, 10, "the load")
    assert opens(car.port, "checkpoints", "volume") == 0
    assert opens(car.port, "loras", "volume") in (None, 0.0)
    assert opens(car.port, "loras", "cache") in (None, 0.0)
    assert discounted(car.port, "volume", "warmup") == copier_opens


def test_stop_wakes_a_watcher_asleep_with_every_root_watched(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / "loras").mkdir(parents=True)
    trees = TreeInotify({"cache": cache}, lambda _event: None)
    trees.start()
    try:
        assert trees.ready.wait(10)
    finally:
        trees.stop(timeout=3600)  # only the wake-up can end the thread's sleep
    assert not trees.alive()


def test_a_root_that_appears_later_is_watched_and_its_files_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tree_inotify, "ROOT_RETRY_SECONDS", 0.05)
    cache = tmp_path / "cache"
    events: list[TreeEvent] = []
    trees = TreeInotify({"cache": cache}, events.append)
    trees.start()
    try:
        assert trees.ready.wait(10)
        assert trees.watch_counts() == {"cache": 0}
        (cache / "loras").mkdir(parents=True)
        wait_for(lambda: trees.watch_counts() == {"cache": 2}, 10, "the new root's watches")
        (cache / "loras" / "late.safetensors").write_bytes(b"x")
        wait_for(
            lambda: ("close_write", "late.safetensors") in {(e.kind, e.name) for e in events},
            10,
            "the file written in the new root",
        )
    finally:
        trees.stop()
