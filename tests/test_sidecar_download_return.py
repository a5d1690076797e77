"""No lost downloads: model files that appear in the cache go back to the volume, atomically,
never over an existing file, never half-written, never the warmup's own copies."""

from __future__ import annotations

import os
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry

from comfy_init import settings
from comfy_init.files.durable import PARTIAL_SUFFIX
from comfy_init.manifest.search_path import SearchPath
from comfy_init.sidecar import proc_writers
from comfy_init.sidecar.download_return import DownloadReturn, place_no_replace
from comfy_init.sidecar.wiring import Sidecar
from comfy_init.warmup.report import FileRecord, Report, write_report
from harness.loopback import free_port
from harness.polling import wait_for

pytestmark = pytest.mark.timeout(60)

SETTLE = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tree:
    def __init__(self, tmp_path: Path) -> None:
        self.cache = tmp_path / "cache"
        self.volume = tmp_path / "ComfyUI" / "models"
        for root in (self.cache, self.volume):
            (root / "checkpoints").mkdir(parents=True)
            (root / "loras").mkdir(parents=True)
        self.report_path = tmp_path / "run" / "warmup-report.json"
        self.clock = Clock()
        self.own_opens: list[Path] = []
        self.returns = DownloadReturn(
            self.cache,
            SearchPath(self.volume),
            self.read_report,
            self.own_opens.append,
            settle_seconds=SETTLE,
            clock=self.clock,
        )
        self.stop = threading.Event()

    def read_report(self) -> Report | None:
        from comfy_init.warmup.report import read_report

        return read_report(self.report_path)

    def drop(self, rel: str, data: bytes, mtime: int = 1_600_000_000) -> Path:
        path = self.cache / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (mtime, mtime))
        return path

    def settle(self, rounds: int = 2) -> None:
        """Let the settle time pass ``rounds`` times, looking at the candidates each time."""
        for _ in range(rounds):
            self.clock.now += SETTLE
            self.returns.run_due(self.stop)

    def volume_names(self, type_: str) -> list[str]:
        return sorted(os.listdir(self.volume / type_))


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


def test_a_model_dropped_into_the_cache_is_copied_to_the_sameplace_no_replace_on_the_volume(
    tree: Tree,
) -> None:
    src = tree.drop("loras/styles/new.safetensors", b"lora-bytes" * 1000)
    tree.returns.notice("loras", "styles/new.safetensors", src)
    tree.settle()
    dest = tree.volume / "loras" / "styles" / "new.safetensors"
    assert dest.read_bytes() == src.read_bytes()
    assert dest.stat().st_mtime_ns == src.stat().st_mtime_ns
    assert os.listdir(dest.parent) == ["new.safetensors"]  # no temp file left behind
    assert tree.returns.stats.files == {"loras": 1}
    assert tree.returns.stats.bytes == {"loras": 10000}
    assert tree.returns.pending() == 0
    assert tree.own_opens == [src]  # announced, so the open counter can discount it


def test_a_file_is_copied_only_after_its_size_and_mtime_held_still(tree: Tree) -> None:
    src = tree.drop("checkpoints/growing.safetensors", b"a" * 100)
    tree.returns.notice("checkpoints", "growing.safetensors", src)
    tree.settle(rounds=1)
    with open(src, "ab") as f:
        f.write(b"b" * 100)
    tree.settle(rounds=1)
    assert tree.volume_names("checkpoints") == []
    tree.settle(rounds=1)
    assert (tree.volume / "checkpoints" / "growing.safetensors").read_bytes() == src.read_bytes()


def test_a_file_someone_still_has_open_for_writing_is_not_copied(tree: Tree) -> None:
    src = tree.drop("checkpoints/downloading.safetensors", b"x" * 4096)
    with open(src, "r+b"):
        assert proc_writers.writers(src) == [os.getpid()]
        tree.returns.notice("checkpoints", "downloading.safetensors", src)
        tree.settle(rounds=4)
        assert tree.volume_names("checkpoints") == []
        assert tree.returns.pending() == 1
    assert proc_writers.writers(src) == []
    tree.settle(rounds=1)
    assert tree.volume_names("checkpoints") == ["downloading.safetensors"]


def test_a_reader_does_not_count_as_a_writer(tree: Tree) -> None:
    src = tree.drop("checkpoints/read.safetensors", b"x")
    with open(src, "rb"):
        assert proc_writers.writers(src) == []


def test_the_warmups_own_copy_is_not_copied_back_even_if_the_volume_lost_it(
    tree: Tree,
) -> None:
    src = tree.drop("checkpoints/warm.safetensors", b"w" * 10)
    record = FileRecord(
        "checkpoints",
        "warm.safetensors",
        str(tree.volume / "checkpoints" / "warm.safetensors"),
        str(src),
        10,
        status="copied",
    )
    report = Report("done", 1, 1.0, "c", str(tree.volume), str(tree.cache), 2.0, [record])
    write_report(tree.report_path, report)
    tree.returns.notice("checkpoints", "warm.safetensors", src)
    tree.settle()
    assert tree.volume_names("checkpoints") == []
    assert tree.returns.pending() == 0
    assert tree.returns.stats.files == {}


def test_an_existing_volume_file_is_never_overwritten(tree: Tree) -> None:
    (tree.volume / "loras" / "same.safetensors").write_bytes(b"the volume's own version")
    src = tree.drop("loras/same.safetensors", b"a different download")
    tree.returns.notice("loras", "same.safetensors", src)
    tree.settle()
    assert (tree.volume / "loras" / "same.safetensors").read_bytes() == (
        b"the volume's own version"
    )
    assert tree.returns.stats.files == {}


def test_a_volume_file_that_appears_during_the_copy_wins(tmp_path: Path) -> None:
    temp = tmp_path / f".x.safetensors.1234{PARTIAL_SUFFIX}"
    temp.write_bytes(b"ours")
    dest = tmp_path / "x.safetensors"
    dest.write_bytes(b"another pod's")
    assert place_no_replace(temp, dest) == "exists"
    assert dest.read_bytes() == b"another pod's"


def test_temp_names_and_hidden_files_are_never_copied(tree: Tree) -> None:
    tree.drop("checkpoints/model.safetensors.part", b"p")
    tree.drop("checkpoints/model.safetensors.tmp", b"t")
    tree.drop(f"checkpoints/.model.safetensors.abcd{PARTIAL_SUFFIX}", b"c")
    tree.drop("checkpoints/.hidden.safetensors", b"h")
    tree.drop(".cache/checkpoints/x.safetensors", b"h")
    assert tree.returns.scan() == 0
    tree.settle()
    assert tree.volume_names("checkpoints") == []


def test_the_start_up_scan_finds_downloads_made_while_the_sidecar_was_down(tree: Tree) -> None:
    tree.drop("checkpoints/a.safetensors", b"a")
    tree.drop("loras/deep/er/b.pt", b"b")
    (tree.volume / "checkpoints" / "on_volume.safetensors").write_bytes(b"v")
    tree.drop("checkpoints/on_volume.safetensors", b"v")
    assert tree.returns.scan() == 3
    tree.settle()
    assert tree.volume_names("checkpoints") == ["a.safetensors", "on_volume.safetensors"]
    assert (tree.volume / "loras" / "deep" / "er" / "b.pt").read_bytes() == b"b"
    assert tree.returns.stats.files == {"checkpoints": 1, "loras": 1}


def test_a_file_deleted_before_it_settled_is_forgotten(tree: Tree) -> None:
    src = tree.drop("loras/gone.safetensors", b"g")
    tree.returns.notice("loras", "gone.safetensors", src)
    src.unlink()
    tree.settle()
    assert tree.returns.pending() == 0
    assert tree.volume_names("loras") == []


def test_a_failed_copy_is_counted_and_retried_later(tree: Tree) -> None:
    src = tree.drop("vae/new.safetensors", b"v" * 10)
    (tree.volume / "vae").write_bytes(b"a file where the folder should be")
    tree.returns.notice("vae", "new.safetensors", src)
    tree.settle()
    assert tree.returns.stats.failures == {"vae": 1}
    assert tree.returns.pending() == 1
    (tree.volume / "vae").unlink()
    tree.clock.now += 31  # the first retry comes after 30 s
    tree.returns.run_due(tree.stop)
    assert (tree.volume / "vae" / "new.safetensors").read_bytes() == b"v" * 10
    assert tree.returns.stats.files == {"vae": 1}


def test_a_download_that_shrinks_during_its_copy_is_a_failure_retried_not_half_copied(
    tree: Tree,
) -> None:
    src = tree.drop("checkpoints/cut.safetensors", b"c" * 5000)

    def truncate_before_the_open(path: Path) -> None:
        os.truncate(path, 1000)  # after the settle check saw 5000 bytes, before the copy

    tree.returns.expect_own_open = truncate_before_the_open
    tree.returns.notice("checkpoints", "cut.safetensors", src)
    tree.settle()
    assert tree.returns.stats.failures == {"checkpoints": 1}
    assert tree.returns.stats.files == {}
    assert tree.volume_names("checkpoints") == []  # no temp file, no short copy
    assert tree.returns.pending() == 1


def test_a_download_is_returned_across_filesystems_through_the_kernel_copy(
    tmpfs: Path, tmp_path: Path
) -> None:
    cache, volume = tmpfs / "cache", tmp_path / "volume"
    data = os.urandom(300_000)
    (cache / "loras").mkdir(parents=True)
    (cache / "loras" / "x.safetensors").write_bytes(data)
    clock = Clock()
    returns = DownloadReturn(
        cache, SearchPath(volume), lambda: None, settle_seconds=SETTLE, clock=clock
    )
    assert returns.scan() == 1
    for _ in range(2):
        clock.now += SETTLE
        returns.run_due(threading.Event())
    assert (volume / "loras" / "x.safetensors").read_bytes() == data
    assert os.listdir(volume / "loras") == ["x.safetensors"]
    assert returns.stats.files == {"loras": 1}


def test_a_stop_during_write_back_leaves_no_temp_file_and_keeps_the_candidate(
    tree: Tree,
) -> None:
    src = tree.drop("loras/stop.safetensors", b"s" * 1000)
    tree.returns.notice("loras", "stop.safetensors", src)
    tree.settle(rounds=1)
    tree.stop = StopDuringCopy()  # type: ignore[assignment]
    tree.settle(rounds=1)
    assert tree.stop.is_set()
    assert tree.volume_names("loras") == []
    assert tree.returns.pending() == 1
    tree.stop = threading.Event()
    tree.settle(rounds=1)
    assert tree.volume_names("loras") == ["stop.safetensors"]


class StopDuringCopy:
    """A stop event that is set by the time the copy loop first looks at it."""

    def __init__(self) -> None:
        self.looks = 0

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks > 1


# --- the sidecar: inotify → write-back → scrape


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[tuple[Sidecar, Path, Path]]:
    cache, volume = tmp_path / "cache", tmp_path / "ComfyUI" / "models"
    (cache / "checkpoints").mkdir(parents=True)
    (volume / "checkpoints").mkdir(parents=True)
    conf = settings.from_env(
        {
            "COMFYUI_PATH": str(tmp_path / "ComfyUI"),
            "CACHE_PATH": str(cache),
            "RUN_DIR": str(tmp_path / "run"),
            "METRICS_ADDR": "127.0.0.1",
            "METRICS_PORT": str(free_port()),
            "COMFYUI_PORT": str(free_port()),
            "WATCHDOG": "0",
        }
    )
    car = Sidecar(conf, registry=CollectorRegistry(), settle_seconds=0.2)
    car.start()
    try:
        assert car.inotify_trees.ready.wait(10)
        yield car, cache, volume
    finally:
        car.stop()


def test_the_sidecar_copies_a_download_back_and_counts_it(
    sidecar: tuple[Sidecar, Path, Path],
) -> None:
    car, cache, volume = sidecar
    part = cache / "checkpoints" / "dl.safetensors.part"
    part.write_bytes(b"d" * 50_000)
    part.rename(cache / "checkpoints" / "dl.safetensors")  # how downloaders finish
    dest = volume / "checkpoints" / "dl.safetensors"
    wait_for(dest.exists, 20, "the write-back")
    assert dest.read_bytes() == b"d" * 50_000
    with urllib.request.urlopen(f"http://127.0.0.1:{car.port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'comfyinit_writeback_files_total{type="checkpoints"} 1.0' in text
    assert 'comfyinit_writeback_bytes_total{type="checkpoints"} 50000.0' in text
    assert list((volume / "checkpoints").iterdir()) == [dest]


# --- the loop's timing: asleep until the next candidate is due or one is noticed


def test_the_loop_sleeps_until_the_first_candidate_is_due_and_a_notice_wakes_it(
    tree: Tree,
) -> None:
    assert tree.returns.seconds_to_next(300.0) == 300.0  # nothing pending: the longest sleep
    assert not tree.returns.wake.is_set()
    first = tree.drop("loras/a.safetensors", b"a")
    tree.returns.notice("loras", "a.safetensors", first)
    assert tree.returns.wake.is_set()
    assert tree.returns.seconds_to_next(300.0) == SETTLE
    tree.returns.wake.clear()
    tree.clock.now += 2.0
    second = tree.drop("checkpoints/b.safetensors", b"b")
    tree.returns.notice("checkpoints", "b.safetensors", second)
    assert tree.returns.wake.is_set()
    assert tree.returns.seconds_to_next(300.0) == SETTLE - 2.0  # the first one is due first
    assert tree.returns.seconds_to_next(1.0) == 1.0
    tree.clock.now += SETTLE
    assert tree.returns.seconds_to_next(300.0) == 0.0  # overdue: look now


def test_a_failed_copy_puts_the_next_look_at_its_retry_time(tree: Tree) -> None:
    src = tree.drop("vae/fails.safetensors", b"x" * 10)
    (tree.volume / "vae").write_bytes(b"a file where the folder should be")
    tree.returns.notice("vae", "fails.safetensors", src)
    tree.settle()
    assert tree.returns.stats.failures == {"vae": 1}
    assert tree.returns.seconds_to_next(300.0) == 30.0
