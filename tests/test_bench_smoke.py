"""The warmup benchmark and its slow-volume stand-in keep working (no timing is asserted).

The smoke run is the real ``python -m bench.warmup --smoke``: tiny files, every row of the
table, every copy compared byte for byte with its source.  The stand-in is also checked
on its own: a read-only mirror that mounts and unmounts cleanly, and a timing model that
gives one handle its rate and many handles the mount's.
"""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # ``bench`` lives beside ``src``, not in the installed package
    sys.path.insert(0, str(REPO))

from bench.slowfs.shaping import MB, Shape, Shaper  # noqa: E402
from bench.warmup.results import ROW_KEYS  # noqa: E402

needs_fuse = pytest.mark.skipif(
    os.geteuid() != 0
    or not os.path.exists("/dev/fuse")
    or shutil.which("fusermount3") is None
    or importlib.util.find_spec("pyfuse3") is None,
    reason="needs root, /dev/fuse, fusermount3 and the bench extra (pip install -e '.[bench]')",
)


def test_one_handle_gets_its_rate_plus_one_round_trip_per_request() -> None:
    shaper = Shaper(Shape(latency=0.002, handle_rate=100 * MB, mount_rate=0))
    shaper.open(7)
    done = [shaper.read_done_at(0.0, 7, 1 * MB) for _ in range(10)]
    # Ten 1 MB requests queued at once leave the handle's pipe 10 ms apart.
    assert done[0] == pytest.approx(0.010 + 0.002)
    assert done[-1] == pytest.approx(0.100 + 0.002)


def test_concurrent_handles_share_the_mount_rate_and_beat_one_handle() -> None:
    shape = Shape(latency=0.0, handle_rate=100 * MB, mount_rate=150 * MB)
    two = Shaper(shape)
    two.open(1)
    two.open(2)
    finish_two = max(two.read_done_at(0.0, fh, 15 * MB) for fh in (1, 2))
    one = Shaper(shape)
    one.open(1)
    finish_one = max(one.read_done_at(0.0, 1, 15 * MB) for _ in range(2))
    assert finish_two == pytest.approx(30 / 150)  # the mount's rate bounds both handles
    assert finish_one == pytest.approx(30 / 100)  # one handle is held to its own rate


def test_metadata_requests_pay_one_round_trip_and_uncapped_pipes_add_nothing() -> None:
    shaper = Shaper(Shape(latency=0.0015, handle_rate=0, mount_rate=0))
    assert shaper.meta_done_at(5.0) == pytest.approx(5.0015)
    assert shaper.read_done_at(5.0, 3, 100 * MB) == pytest.approx(5.0015)
    with pytest.raises(ValueError, match="must not be negative"):
        Shape(latency=-1)


@needs_fuse
@pytest.mark.root
@pytest.mark.process
@pytest.mark.timeout(60)
def test_slow_volume_mirrors_the_backing_tree_read_only_and_unmounts_on_exit(
    tmp_path: Path,
) -> None:
    from bench.slowfs import SlowVolume

    backing, mnt = tmp_path / "backing", tmp_path / "mnt"
    (backing / "loras" / "set").mkdir(parents=True)
    files = {
        "checkpoints/a.safetensors": os.urandom(3 * 1024 * 1024 + 17),
        "loras/set/b.safetensors": os.urandom(4096),
        "vae/empty.safetensors": b"",
    }
    for rel, data in files.items():
        (backing / rel).parent.mkdir(parents=True, exist_ok=True)
        (backing / rel).write_bytes(data)
    with SlowVolume(backing, mnt, Shape(latency=0.0005)) as vol:
        assert sorted(os.listdir(mnt)) == ["checkpoints", "loras", "vae"]
        for rel, data in files.items():
            assert (mnt / rel).read_bytes() == data
            assert (mnt / rel).stat().st_mtime_ns == (backing / rel).stat().st_mtime_ns
        with pytest.raises(OSError, match="Read-only file system") as refused:
            (mnt / "checkpoints" / "new.safetensors").write_bytes(b"x")
        assert refused.value.errno == errno.EROFS
        with pytest.raises(OSError, match="Read-only file system") as refused:
            os.open(mnt / "checkpoints" / "a.safetensors", os.O_WRONLY)
        assert refused.value.errno == errno.EROFS
        stats = vol.stats()
        assert stats["read_bytes"] >= sum(len(d) for d in files.values())
        assert stats["opens"] >= 2
    assert not os.path.ismount(mnt)
    assert (backing / "checkpoints" / "a.safetensors").read_bytes() == files[
        "checkpoints/a.safetensors"
    ]


@needs_fuse
@pytest.mark.root
@pytest.mark.process
@pytest.mark.timeout(240)
def test_smoke_run_prints_every_row_and_every_copy_matches_its_source(tmp_path: Path) -> None:
    data, results = tmp_path / "data", tmp_path / "results"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "bench.warmup", "--smoke", "--keep-copies"),
            *("--data-dir", str(data), "--results-dir", str(results)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line.split("|")[1:3] for line in done.stdout.splitlines() if line.startswith("| ")]
    printed = {(target.strip(), method.strip()) for target, method in table}
    assert set(ROW_KEYS) <= printed
    (report,) = results.glob("warmup-*-smoke.json")
    rows = json.loads(report.read_text(encoding="utf-8"))["rows"]
    assert {(r["target"], r["method"]) for r in rows} == set(ROW_KEYS)
    markdown = report.with_suffix(".md").read_text(encoding="utf-8")
    assert markdown in done.stdout

    models = data / "ComfyUI" / "models"
    sources = sorted(p.relative_to(models) for p in models.rglob("*") if p.is_file())
    assert len(sources) == 10
    work = data / "work"
    copies = ("local-cp", "local-rsync", "local-cache", "volume-cp", "volume-rsync", "volume-cache")
    for copy in copies:
        for rel in sources:
            assert (work / copy / rel).read_bytes() == (models / rel).read_bytes(), (copy, rel)
    assert not os.path.ismount(work / "volume" / "ComfyUI")
