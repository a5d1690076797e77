"""Page-cache residency, measured by the kernel: dropped pages read low, read pages read full.

These use a directory on the real disk (/var/tmp): on tmpfs every page is always resident.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_init import residency
from comfy_init.residency import PAGE_SIZE, mincore_pages, resident

pytestmark = pytest.mark.timeout(60)

SIZE = 1024 * PAGE_SIZE + 123  # 1025 pages, the last one partial


@pytest.fixture
def disk_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="comfy-init-residency-", dir="/var/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def write_file(path: Path, size: int = SIZE) -> Path:
    with open(path, "wb") as fh:
        fh.write(os.urandom(size))
        fh.flush()
        os.fsync(fh.fileno())  # clean pages can be dropped
    return path


def drop(path: Path, offset: int = 0, length: int = 0) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def dropped(path: Path) -> Path:
    """``path`` with its pages dropped; skip when this filesystem keeps them regardless."""
    drop(path)
    measured = resident(path)
    assert measured is not None
    if measured[0] == measured[1]:
        pytest.skip(f"the filesystem under {path.parent} keeps every page in memory (tmpfs?)")
    return path


def read_all(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 20):
            pass


@pytest.fixture(params=["cachestat", "mincore"])
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with cachestat(2), and again with cachestat refused so mincore(2) answers."""
    if request.param == "mincore":
        # A syscall number no kernel has: cachestat fails with ENOSYS, as on an old kernel.
        monkeypatch.setattr(residency, "_CACHESTAT_NR", 100_000)
    elif residency._CACHESTAT_NR is None:
        pytest.skip("cachestat(2) has no known syscall number on this architecture")
    return str(request.param)


def test_dropped_file_is_not_resident_and_a_read_makes_it_fully_resident(
    disk_dir: Path, method: str
) -> None:
    path = dropped(write_file(disk_dir / "model.safetensors"))
    cold = resident(path)
    assert cold is not None
    assert cold[1] == SIZE
    assert cold[0] <= SIZE // 10
    read_all(path)
    assert resident(path) == (SIZE, SIZE)  # last partial page counted as its bytes only


def test_half_dropped_file_reports_the_resident_half(disk_dir: Path, method: str) -> None:
    path = dropped(write_file(disk_dir / "half.safetensors"))
    read_all(path)
    half = (SIZE // 2) // PAGE_SIZE * PAGE_SIZE
    drop(path, half)
    assert resident(path) == (half, SIZE)


def test_mincore_windows_add_up_to_the_same_count(disk_dir: Path) -> None:
    path = dropped(write_file(disk_dir / "w.safetensors"))
    read_all(path)
    drop(path, 5 * PAGE_SIZE, 7 * PAGE_SIZE)  # a hole in the middle of the first window
    drop(path, 512 * PAGE_SIZE)  # and everything from page 512 on
    fd = os.open(path, os.O_RDONLY)
    try:
        whole = mincore_pages(fd, SIZE)
        assert whole == 512 - 7
        for window in (PAGE_SIZE, 3 * PAGE_SIZE, 1 << 20, 1000):
            assert mincore_pages(fd, SIZE, window=window) == whole
        if residency._CACHESTAT_NR is not None:
            assert residency.cachestat_pages(fd) == whole
    finally:
        os.close(fd)


def test_resident_is_none_for_what_cannot_be_opened_or_is_no_file(tmp_path: Path) -> None:
    assert resident(tmp_path / "missing.safetensors") is None
    assert resident(tmp_path) is None
    (tmp_path / "empty.pt").touch()
    assert resident(tmp_path / "empty.pt") == (0, 0)
