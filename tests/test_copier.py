"""Real-file tests of the copier and the stream pool: content, mtime, ranges, methods,
cancel, failures, space."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import platform
import shutil
import threading
import time
from pathlib import Path

import pytest
from inotify_simple import INotify
from inotify_simple import flags as iflags

from comfy_init.files import durable, kernel_copy
from comfy_init.files.durable import PARTIAL_SUFFIX
from comfy_init.warmup import copier
from comfy_init.warmup.copier import RateLimiter, Reader
from comfy_init.warmup.pool import CopyJob, CopyOutcome, CopyPool

KiB = 1024
MiB = 1024 * KiB


def make_file(
    path: Path, size: int, seed: int = 1, mtime_ns: int = 1_600_000_000_123_456_789
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB, not all zeros
    with path.open("wb") as fh:
        left = size
        while left > 0:
            fh.write(block[: min(left, len(block))])
            left -= len(block)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(PARTIAL_SUFFIX)]


def run_pool(
    jobs: list[CopyJob], *, streams: int = 4, chunk: int = 64 * KiB, **kw: object
) -> dict[int, CopyOutcome]:
    outcomes: dict[int, CopyOutcome] = {}
    lock = threading.Lock()

    def done(o: CopyOutcome) -> None:
        with lock:
            outcomes[o.key] = o

    cancel = kw.pop("cancel", threading.Event())
    assert isinstance(cancel, threading.Event)
    with CopyPool(streams=streams, chunk_bytes=chunk, cancel=cancel, on_done=done, **kw) as pool:  # type: ignore[arg-type]
        for job in jobs:
            pool.submit(job)
        assert pool.wait_idle(60)
    return outcomes


def job_for(key: int, src: Path, dest: Path) -> CopyJob:
    st = src.stat()
    return CopyJob(key=key, source=src, dest=dest, size=st.st_size, mtime_ns=st.st_mtime_ns)


def test_split_ranges_keeps_small_files_whole_and_cuts_large_files_into_chunks() -> None:
    assert copier.split_ranges(0, 10) == []
    assert copier.split_ranges(20, 10) == [(0, 20)]
    assert copier.split_ranges(25, 10) == [(0, 10), (10, 10), (20, 5)]
    ranges = copier.split_ranges(10 * MiB + 3, MiB)
    assert sum(length for _, length in ranges) == 10 * MiB + 3
    assert [off for off, _ in ranges] == list(range(0, 10 * MiB + 3, MiB))


def test_multi_chunk_file_is_copied_by_several_streams_with_same_content_and_mtime(
    tmp_path: Path,
) -> None:
    src = make_file(tmp_path / "vol" / "big.safetensors", 1 * MiB + 12_345)
    dest = tmp_path / "cache" / "checkpoints" / "sub" / "big.safetensors"
    out = run_pool([job_for(0, src, dest)], streams=4, chunk=64 * KiB)[0]
    assert out.ok, out.error
    assert out.bytes_copied == src.stat().st_size
    assert digest(dest) == digest(src)
    assert dest.stat().st_mtime_ns == src.stat().st_mtime_ns
    assert dest.stat().st_mode & 0o777 == 0o644
    assert partials(tmp_path) == []


def test_copy_within_one_filesystem_uses_copy_file_range(tmp_path: Path) -> None:
    src = make_file(tmp_path / "a.bin", 300 * KiB)
    out = run_pool([job_for(0, src, tmp_path / "c" / "a.bin")])[0]
    assert out.ok
    assert out.method == "copy_file_range"


def test_copy_across_filesystems_falls_back_to_sendfile(tmp_path: Path, tmpfs: Path) -> None:
    src = make_file(tmpfs / "lora.safetensors", 700 * KiB, seed=7)
    dest = tmp_path / "cache" / "loras" / "lora.safetensors"
    out = run_pool([job_for(0, src, dest)], chunk=64 * KiB)[0]
    assert out.ok, out.error
    assert out.method in ("sendfile", "pwrite")  # copy_file_range refuses EXDEV here
    assert digest(dest) == digest(src)
    assert dest.stat().st_mtime_ns == src.stat().st_mtime_ns


def test_pwrite_path_copies_a_range_exactly(tmp_path: Path) -> None:
    src = make_file(tmp_path / "s.bin", 200 * KiB, seed=3)
    t = copier.create(src, tmp_path / "d.bin", 200 * KiB, src.stat().st_mtime_ns)
    t.method = kernel_copy.Method("pwrite")
    r = Reader()
    r.open(t)
    try:
        copier.copy_range(t, r, 0, 200 * KiB, cancel=threading.Event())
    finally:
        r.close()
    copier.commit(t)
    assert (tmp_path / "d.bin").read_bytes() == src.read_bytes()
    assert partials(tmp_path) == []


def test_many_small_files_and_an_empty_file_are_all_copied(tmp_path: Path) -> None:
    jobs = []
    for i in range(30):
        src = make_file(tmp_path / "vol" / f"f{i}.pt", (i * 997) % 5000, seed=i)
        jobs.append(job_for(i, src, tmp_path / "cache" / f"f{i}.pt"))
    outs = run_pool(jobs, streams=3)
    assert sorted(outs) == list(range(30))
    assert all(o.ok for o in outs.values())
    for job in jobs:
        assert job.dest.read_bytes() == job.source.read_bytes()
    assert (tmp_path / "cache" / "f0.pt").stat().st_size == 0


def test_an_existing_stale_copy_is_replaced_by_the_new_content(tmp_path: Path) -> None:
    src = make_file(tmp_path / "v.pt", 100 * KiB, seed=1)
    dest = make_file(tmp_path / "c" / "v.pt", 50 * KiB, seed=2)
    assert run_pool([job_for(0, src, dest)])[0].ok
    assert digest(dest) == digest(src)


def open_fds_to(path: Path) -> int:
    fds = Path("/proc/self/fd")
    n = 0
    for fd in fds.iterdir():
        try:
            n += os.readlink(fd) == str(path)
        except OSError:
            continue
    return n


def test_on_open_is_called_before_every_open_of_a_source(tmp_path: Path) -> None:
    srcs = [make_file(tmp_path / "vol" / f"m{i}.safetensors", 200 * KiB, seed=i) for i in range(4)]
    calls: list[int] = []

    def on_open(key: int) -> None:
        assert open_fds_to(srcs[key]) == 0  # called before the open, not after
        calls.append(key)

    ino = INotify()
    try:
        ino.add_watch(tmp_path / "vol", iflags.OPEN)
        jobs = [job_for(i, s, tmp_path / "c" / s.name) for i, s in enumerate(srcs)]
        outs = run_pool(jobs, streams=1, chunk=64 * KiB, on_open=on_open)
        seen = sorted(e.name for e in ino.read(timeout=0))
    finally:
        ino.close()
    assert all(o.ok for o in outs.values())
    # One stream: it opens each file once and keeps it open for all of that file's ranges.
    assert calls == [0, 1, 2, 3]
    assert seen == [s.name for s in srcs]


def test_each_stream_opens_the_source_at_most_once_per_file(tmp_path: Path) -> None:
    src = make_file(tmp_path / "vol" / "m.safetensors", 1 * MiB)
    calls: list[int] = []
    out = run_pool(
        [job_for(0, src, tmp_path / "c" / "m.safetensors")],
        streams=3,
        chunk=64 * KiB,
        on_open=calls.append,
    )[0]
    assert out.ok
    assert 1 <= len(calls) <= 3


def test_cancel_mid_copy_removes_the_temp_file_and_never_creates_the_destination(
    tmp_path: Path,
) -> None:
    src = make_file(tmp_path / "big.bin", 2 * MiB)
    dest = tmp_path / "c" / "big.bin"
    cancel = threading.Event()
    started = threading.Event()

    def progress(key: int, n: int) -> None:
        started.set()

    result: dict[int, CopyOutcome] = {}
    limiter = RateLimiter(256 * KiB)  # ~8 s for the whole file: the cancel lands mid-copy
    with CopyPool(
        streams=2,
        chunk_bytes=256 * KiB,
        cancel=cancel,
        on_done=lambda o: result.setdefault(o.key, o),
        on_progress=progress,
        limiter=limiter,
    ) as pool:
        pool.submit(job_for(0, src, dest))
        assert started.wait(10)
        assert len(partials(tmp_path)) == 1
        cancel.set()
        assert pool.wait_idle(10)
    out = result[0]
    assert not out.ok
    assert out.cancelled
    assert 0 < out.bytes_copied < src.stat().st_size
    assert not dest.exists()
    assert partials(tmp_path) == []


def test_a_vanished_source_fails_that_file_with_its_path_and_leaves_nothing(tmp_path: Path) -> None:
    src = make_file(tmp_path / "gone.bin", 10 * KiB)
    job = job_for(0, src, tmp_path / "c" / "gone.bin")
    ok_src = make_file(tmp_path / "ok.bin", 10 * KiB)
    src.unlink()
    outs = run_pool([job, job_for(1, ok_src, tmp_path / "c" / "ok.bin")])
    assert not outs[0].ok
    assert not outs[0].cancelled
    assert "gone.bin" in (outs[0].error or "")
    assert outs[1].ok  # the rest goes on
    assert not job.dest.exists()
    assert partials(tmp_path) == []


def test_a_source_that_changed_since_planning_is_not_committed(tmp_path: Path) -> None:
    src = make_file(tmp_path / "m.bin", 10 * KiB)
    job = job_for(0, src, tmp_path / "c" / "m.bin")
    make_file(src, 20 * KiB, mtime_ns=1_700_000_000_000_000_000)
    out = run_pool([job])[0]
    assert not out.ok
    assert "source changed" in (out.error or "")
    assert not job.dest.exists()


def test_a_file_larger_than_the_free_space_is_refused_at_preallocation(
    tmp_path: Path, tmpfs: Path
) -> None:
    src = make_file(tmp_path / "huge.bin", 5 * MiB)
    with pytest.raises(OSError, match="No space") as info:
        copier.create(src, tmpfs / "c" / "huge.bin", 5 * MiB, 0)
    assert info.value.errno == errno.ENOSPC
    assert partials(tmpfs) == []


def test_unallocated_bytes_counts_only_space_not_yet_reserved(tmp_path: Path) -> None:
    src = make_file(tmp_path / "m.bin", 1 * MiB)
    cancel = threading.Event()
    limiter = RateLimiter(128 * KiB)
    with CopyPool(
        streams=1, chunk_bytes=MiB, cancel=cancel, on_done=lambda o: None, limiter=limiter
    ) as pool:
        pool.submit(job_for(0, src, tmp_path / "c" / "m.bin"))
        # posix_fallocate reserved the whole file on ext4: nothing more is promised.
        assert pool.unallocated_bytes() == 0
        cancel.set()
        assert pool.wait_idle(10)
    assert pool.unallocated_bytes() == 0


def test_rate_limiter_gives_up_when_cancelled_while_waiting() -> None:
    limiter = RateLimiter(100_000)
    cancel = threading.Event()
    assert limiter.acquire(limiter.burst, cancel)  # the first burst is free
    cancel.set()
    assert not limiter.acquire(limiter.burst, cancel)  # would have to wait: gives up at once


def test_commit_syncs_no_directory_and_the_pool_syncs_each_one_once_after_its_renames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[tuple[Path, list[str]]] = []
    real_sync_dir = durable.sync_dir

    def spy(path: Path) -> None:
        synced.append((path, sorted(p.name for p in path.iterdir())))
        real_sync_dir(path)

    monkeypatch.setattr(durable, "sync_dir", spy)
    cache = tmp_path / "cache"
    jobs = [
        job_for(
            i,
            make_file(tmp_path / "vol" / f"m{i}.pt", 10 * KiB, seed=i),
            cache / ("odd" if i % 2 else "even") / f"m{i}.pt",
        )
        for i in range(6)
    ]
    with CopyPool(
        streams=3, chunk_bytes=MiB, cancel=threading.Event(), on_done=lambda o: None
    ) as pool:
        for job in jobs:
            pool.submit(job)
        assert pool.wait_idle(30)
        assert all(job.dest.exists() for job in jobs)
        assert synced == []  # every copy is in place, no directory synced yet
        assert pool.sync_dirs() == []
        assert synced == [
            (cache / "even", ["m0.pt", "m2.pt", "m4.pt"]),
            (cache / "odd", ["m1.pt", "m3.pt", "m5.pt"]),
        ]
        assert pool.sync_dirs() == []  # nothing renamed since: nothing to sync
    assert len(synced) == 2


def test_a_directory_that_cannot_be_synced_is_reported_and_the_others_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    real_sync_dir = durable.sync_dir

    def spy(path: Path) -> None:
        real_sync_dir(path)
        synced.append(path)

    monkeypatch.setattr(durable, "sync_dir", spy)
    cache = tmp_path / "cache"
    a = make_file(tmp_path / "vol" / "a.pt", KiB, seed=1)
    b = make_file(tmp_path / "vol" / "b.pt", KiB, seed=2)
    with CopyPool(
        streams=2, chunk_bytes=MiB, cancel=threading.Event(), on_done=lambda o: None
    ) as pool:
        pool.submit(job_for(0, a, cache / "gone" / "a.pt"))
        pool.submit(job_for(1, b, cache / "kept" / "b.pt"))
        assert pool.wait_idle(30)
        shutil.rmtree(cache / "gone")
        failed = pool.sync_dirs()
    assert [(path, exc.errno) for path, exc in failed] == [(cache / "gone", errno.ENOENT)]
    assert synced == [cache / "kept"]


def test_each_range_of_a_large_copy_starts_its_writeback_and_a_one_range_file_does_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[tuple[int, int]] = []
    real_start = copier.start_writeback

    def spy(fd: int, off: int, length: int) -> None:
        started.append((off, length))
        real_start(fd, off, length)

    monkeypatch.setattr(copier, "start_writeback", spy)
    big = make_file(tmp_path / "vol" / "big.safetensors", MiB + 5, seed=4)
    small = make_file(tmp_path / "vol" / "small.safetensors", 100 * KiB, seed=5)
    outs = run_pool(
        [
            job_for(0, big, tmp_path / "c" / big.name),
            job_for(1, small, tmp_path / "c" / small.name),
        ],
        streams=3,
        chunk=256 * KiB,
    )
    assert all(o.ok for o in outs.values())
    assert sorted(started) == copier.split_ranges(MiB + 5, 256 * KiB)
    assert digest(tmp_path / "c" / big.name) == digest(big)


class _Range(ctypes.Structure):
    _fields_ = (("off", ctypes.c_uint64), ("len", ctypes.c_uint64))


class _Cachestat(ctypes.Structure):
    _fields_ = tuple(
        (name, ctypes.c_uint64)
        for name in ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")
    )


def dirty_pages(fd: int) -> int:
    """Dirty page-cache pages of the whole file, from cachestat(2) (Linux 6.5+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rng, st = _Range(0, 0), _Cachestat()
    if platform.machine() not in ("x86_64", "aarch64") or libc.syscall(
        451, fd, ctypes.byref(rng), ctypes.byref(st), 0
    ):
        pytest.skip("cachestat(2) is not available here")
    return int(st.nr_dirty)


def test_start_writeback_sends_a_ranges_dirty_pages_to_disk_without_an_fsync(
    tmp_path: Path,
) -> None:
    data = os.urandom(4 * MiB)
    fd = os.open(tmp_path / "w.bin", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        for _ in range(3):  # a sync run by another process may clean the pages first
            os.pwrite(fd, data, 0)
            if dirty_pages(fd):
                break
        else:
            pytest.skip("this filesystem keeps no dirty pages to write back")
        copier.start_writeback(fd, 0, len(data))
        # Without it the pages would stay dirty for the kernel's 30 s expiry.
        deadline = time.monotonic() + 10
        while dirty_pages(fd) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dirty_pages(fd) == 0
        assert os.pread(fd, 64, 0) == data[:64]
    finally:
        os.close(fd)


def test_every_open_of_a_source_by_several_streams_shows_as_its_own_inotify_event(
    tmp_path: Path,
) -> None:
    """The metrics sidecar matches open events with the report's ``source_opens``; inotify
    merges an event with an identical one queued just before it, so two streams opening one
    file back to back must not queue two identical events in a row."""
    src = make_file(tmp_path / "vol" / "big.safetensors", 1 * MiB, seed=8)
    calls: list[int] = []
    another = threading.Event()

    def on_open(key: int) -> None:
        calls.append(key)
        if len(calls) == 1:
            another.wait(10)  # hold the first stream until a second one opens the file too
        else:
            another.set()

    ino = INotify()
    try:
        ino.add_watch(src.parent, iflags.OPEN)
        out = run_pool(
            [job_for(0, src, tmp_path / "c" / src.name)],
            streams=4,
            chunk=64 * KiB,
            on_open=on_open,
            limiter=RateLimiter(4 * MiB),  # slow enough that every stream takes a range
        )[0]
        # Read only now: every event had the chance to merge with the one before it.
        file_opens = [e for e in ino.read(timeout=0) if e.name == src.name]
    finally:
        ino.close()
    assert out.ok
    assert len(calls) >= 2
    assert len(file_opens) == len(calls)
