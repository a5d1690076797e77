"""The in-kernel copy the warmup and the download return share: every way copies a range to
the same offsets, a way that does not apply is given up once for every stream, a source that
ends early is an error, and a stop or an empty budget ends the copy between two requests."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_init.files import kernel_copy
from comfy_init.files.kernel_copy import METHODS, Cancelled, Method, Stream

KiB = 1024
DATA = bytes(range(256)) * 1024  # 256 KiB, every offset distinguishable


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[int, int, Path]]:
    """(source fd, destination fd, destination path): DATA and as many zero bytes."""
    src_path, dst_path = tmp_path / "src.bin", tmp_path / "dst.bin"
    src_path.write_bytes(DATA)
    dst_path.write_bytes(bytes(len(DATA)))
    src = os.open(src_path, os.O_RDONLY)
    dst = os.open(dst_path, os.O_WRONLY)
    yield src, dst, dst_path
    os.close(src)
    os.close(dst)


@pytest.mark.parametrize("name", METHODS)
def test_each_way_copies_a_range_to_the_same_offsets_and_nothing_else(
    files: tuple[int, int, Path], name: str
) -> None:
    src, dst, dst_path = files
    progress: list[int] = []
    method = Method(name)
    kernel_copy.copy_range(
        Stream(src, dst), 1000, 100 * KiB, method=method, cancel=threading.Event(),
        on_progress=progress.append,
    )  # fmt: skip
    out = dst_path.read_bytes()
    assert out[1000 : 1000 + 100 * KiB] == DATA[1000 : 1000 + 100 * KiB]
    assert out[:1000] == bytes(1000)
    assert out[1000 + 100 * KiB :] == bytes(len(DATA) - 1000 - 100 * KiB)
    assert sum(progress) == 100 * KiB
    assert method.name == name


def test_across_filesystems_copy_file_range_is_given_up_for_the_next_way(
    tmpfs: Path, tmp_path: Path
) -> None:
    (tmpfs / "src.bin").write_bytes(DATA)
    src = os.open(tmpfs / "src.bin", os.O_RDONLY)
    dst = os.open(tmp_path / "dst.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    method = Method()
    try:
        kernel_copy.copy_range(
            Stream(src, dst), 0, len(DATA), method=method, cancel=threading.Event()
        )
    finally:
        os.close(src)
        os.close(dst)
    assert method.name in ("sendfile", "pwrite")  # copy_file_range refuses EXDEV here
    assert (tmp_path / "dst.bin").read_bytes() == DATA


def test_streams_sharing_a_destination_each_sendfile_through_a_descriptor_of_their_own(
    files: tuple[int, int, Path],
) -> None:
    src, dst, dst_path = files
    method = Method("sendfile")
    halves = [Stream(src, dst, dst_path), Stream(src, dst, dst_path)]
    half = len(DATA) // 2
    threads = [
        threading.Thread(
            target=kernel_copy.copy_range,
            args=(stream, i * half, half),
            kwargs={"method": method, "cancel": threading.Event()},
        )
        for i, stream in enumerate(halves)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert dst_path.read_bytes() == DATA
    own = [stream.sendfile_dst() for stream in halves]
    assert len({dst, *own}) == 3
    for stream, fd in zip(halves, own, strict=True):
        stream.close_own()
        with pytest.raises(OSError, match="Bad file descriptor"):
            os.fstat(fd)
    os.fstat(dst)  # the shared descriptor is the caller's: still open


def test_a_source_that_ends_early_is_an_io_error_naming_it_after_every_way_was_tried(
    files: tuple[int, int, Path],
) -> None:
    src, dst, _ = files
    method = Method()
    with pytest.raises(OSError, match="the source ended early") as ended:
        kernel_copy.copy_range(
            Stream(src, dst, source="/volume/x.safetensors"), len(DATA) - 10, 20,
            method=method, cancel=threading.Event(),
        )  # fmt: skip
    assert ended.value.errno == errno.EIO
    assert ended.value.filename == "/volume/x.safetensors"
    assert f"at byte {len(DATA)} of {len(DATA) + 10}" in str(ended.value)
    assert method.name == "pwrite"


def test_a_stop_ends_the_copy_between_two_requests(
    files: tuple[int, int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst, dst_path = files
    monkeypatch.setattr(kernel_copy, "SYSCALL_BYTES", 16 * KiB)
    cancel = threading.Event()
    progress: list[int] = []

    def one_request_then_stop(n: int) -> None:
        progress.append(n)
        cancel.set()

    with pytest.raises(Cancelled):
        kernel_copy.copy_range(
            Stream(src, dst), 0, len(DATA), method=Method(), cancel=cancel,
            on_progress=one_request_then_stop,
        )  # fmt: skip
    assert progress == [16 * KiB]
    assert dst_path.read_bytes()[16 * KiB :] == bytes(len(DATA) - 16 * KiB)


class Budget:
    """A pace that grants ``grants`` requests of at most ``burst`` bytes, then refuses."""

    def __init__(self, burst: int, grants: int) -> None:
        self.burst = burst
        self.grants = grants
        self.asked: list[int] = []

    def acquire(self, n: int, cancel: threading.Event) -> bool:
        self.asked.append(n)
        return len(self.asked) <= self.grants


def test_a_pace_caps_every_request_at_its_burst_and_a_refusal_stops_the_copy(
    files: tuple[int, int, Path],
) -> None:
    src, dst, dst_path = files
    pace = Budget(burst=10 * KiB, grants=3)
    with pytest.raises(Cancelled):
        kernel_copy.copy_range(
            Stream(src, dst), 0, len(DATA), method=Method(), cancel=threading.Event(), pace=pace
        )
    assert pace.asked == [10 * KiB] * 4
    out = dst_path.read_bytes()
    assert out[: 30 * KiB] == DATA[: 30 * KiB]
    assert out[30 * KiB :] == bytes(len(DATA) - 30 * KiB)


def test_a_way_given_up_by_two_streams_at_once_moves_down_one_step_only() -> None:
    method = Method()
    method.downgrade("copy_file_range")
    method.downgrade("copy_file_range")  # the second stream's report of the same failure
    assert method.name == "sendfile"


def test_an_unknown_way_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'splice'"):
        Method("splice")
