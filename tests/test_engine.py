"""The warmup engine on real files: priority, hits, re-copies, space, cancel, failures, lock."""

from __future__ import annotations

import fcntl
import io
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from inotify_simple import INotify
from inotify_simple import flags as iflags

import warmup_tree
from comfy_init import logs, settings
from comfy_init.files import durable
from comfy_init.files.durable import PARTIAL_SUFFIX
from comfy_init.warmup import engine, live_report, progress
from comfy_init.warmup.live_report import LiveReport
from comfy_init.warmup.pool import CopyPool
from comfy_init.warmup.report import FILE_STATUSES, FileRecord, Report, Totals, read_report
from harness.polling import wait_for

KiB = 1024
MiB = 1024 * KiB


class Tree(warmup_tree.Tree):
    def partials(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.name.endswith(PARTIAL_SUFFIX)]


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    return Tree(tmp_path)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    logs.configure("info", "json", stream=out)
    yield out
    logs.configure("info", "json")


def events(out: io.StringIO, name: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, out.getvalue().splitlines()) if e["event"] == name]


def warm(s: settings.Settings, cancel: threading.Event | None = None) -> engine.Report:
    return engine.run(s, config=None, cancel=cancel or threading.Event())


def test_warmup_copies_every_configured_file_in_config_order_and_reports_it(tree: Tree) -> None:
    a = tree.model("checkpoints/SDXL/a.safetensors", 3 * MiB + 5)
    b = tree.model("loras/b.safetensors", 40 * KiB)
    c = tree.model("unet/c.safetensors", 10 * KiB)
    tree.config("loras/*\ncheckpoints/**/*.safetensors  # big one\nunet/c.safetensors\n")
    report = warm(tree.settings())
    assert [(r.type, r.name, r.status) for r in report.files] == [
        ("loras", "b.safetensors", "copied"),
        ("checkpoints", "SDXL/a.safetensors", "copied"),
        ("unet", "c.safetensors", "copied"),
    ]
    for src, rel in (
        (a, "checkpoints/SDXL/a.safetensors"),
        (b, "loras/b.safetensors"),
        (c, "unet/c.safetensors"),
    ):
        dest = tree.cache / rel
        assert dest.read_bytes() == src.read_bytes()
        assert dest.stat().st_mtime_ns == src.stat().st_mtime_ns
    on_disk = read_report(tree.run / "warmup-report.json")
    assert on_disk is not None
    assert on_disk.state == "done"
    assert on_disk.totals.copied == 3
    assert on_disk.totals.bytes_copied == a.stat().st_size + b.stat().st_size + c.stat().st_size
    assert all(r.source_opens >= 1 for r in on_disk.files)
    # ComfyUI's paths file has one writer (comfyui/model_paths.write), called by the commands.
    assert not (tree.run / "extra_model_paths.yaml").exists()
    assert tree.partials() == []


def test_rerun_is_all_hits_and_opens_no_source_file(tree: Tree, log_lines: io.StringIO) -> None:
    tree.model("checkpoints/a.safetensors", 2 * MiB)
    tree.model("loras/deep/b.safetensors", 10 * KiB)
    tree.config("checkpoints/a.safetensors\nloras/**\n")
    assert warm(tree.settings()).totals.copied == 2
    ino = INotify()
    try:
        for d in (tree.models / "checkpoints", tree.models / "loras", tree.models / "loras/deep"):
            ino.add_watch(d, iflags.OPEN)
        report = warm(tree.settings())
        # Listing folders for the wildcard is fine; opening a model file is not.
        opened = [e.name for e in ino.read(timeout=0) if not e.mask & iflags.ISDIR]
    finally:
        ino.close()
    assert opened == []
    assert [r.status for r in report.files] == ["hit", "hit"]
    assert report.totals.bytes_copied == 0
    assert all(r.source_opens == 0 for r in report.files)
    assert len(events(log_lines, "file_cached")) == 2


def test_changed_source_is_copied_again_and_unchanged_ones_stay_hits(tree: Tree) -> None:
    a = tree.model("vae/a.pt", 20 * KiB)
    tree.model("vae/b.pt", 20 * KiB)
    tree.config("vae/*\n")
    warm(tree.settings())
    tree.model("vae/a.pt", 20 * KiB, seed=9)  # same size, new content and mtime
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 5_000_000_000))
    report = warm(tree.settings())
    assert {r.name: r.status for r in report.files} == {"a.pt": "copied", "b.pt": "hit"}
    assert (tree.cache / "vae/a.pt").read_bytes() == a.read_bytes()


def test_unmatched_line_is_a_missing_record_with_its_line_and_the_rest_warms(
    tree: Tree, log_lines: io.StringIO
) -> None:
    tree.model("loras/x.safetensors", KiB)
    conf = tree.config("# comment\nloras/nothere*.safetensors\nloras/x.safetensors\n")
    report = warm(tree.settings())
    assert [(r.name, r.status, r.line) for r in report.files] == [
        ("nothere*.safetensors", "missing", f"{conf}:2"),
        ("x.safetensors", "copied", f"{conf}:3"),
    ]
    (warning,) = events(log_lines, "pattern_unmatched")
    assert warning["line"] == f"{conf}:2"
    (summary,) = events(log_lines, "warmup_finished")
    assert summary["missing"] == 1
    assert summary["copied"] == 1


def test_a_bad_config_line_is_skipped_alone_logged_and_listed_in_the_report(
    tree: Tree, log_lines: io.StringIO
) -> None:
    tree.model("loras/x.safetensors", KiB)
    conf = tree.config("loras/x.safetensors\nloras/../../etc/passwd\n")
    report = warm(tree.settings())
    assert (tree.cache / "loras" / "x.safetensors").is_file()
    assert [(r.name, r.status) for r in report.files] == [("x.safetensors", "copied")]
    (skipped,) = report.skipped
    assert (skipped.line, skipped.entry, skipped.reason) == (
        f"{conf}:2",
        "loras/../../etc/passwd",
        "invalid",
    )
    assert skipped.error.startswith(f"{conf}:2: warmup config line 'loras/../../etc/passwd'")
    on_disk = read_report(tree.run / "warmup-report.json")
    assert on_disk is not None
    assert on_disk.skipped == report.skipped
    (logged,) = events(log_lines, "config_line_skipped")
    assert logged["line"] == f"{conf}:2"
    assert events(log_lines, "warmup_finished")[0]["skipped_lines"] == 1


def test_leftover_partial_files_from_a_killed_run_are_removed(
    tree: Tree, log_lines: io.StringIO
) -> None:
    tree.model("loras/x.safetensors", KiB)
    tree.config("loras/x.safetensors\n")
    leftover = tree.cache / "loras" / f".x.safetensors.deadbeef{PARTIAL_SUFFIX}"
    leftover.parent.mkdir(parents=True)
    leftover.write_bytes(b"half")
    report = warm(tree.settings())
    assert not leftover.exists()
    assert report.files[0].status == "copied"
    assert [e["path"] for e in events(log_lines, "partial_removed")] == [str(leftover)]


@pytest.fixture
def small_cache(tree: Tree) -> Iterator[Path]:
    """The cache on a 4 MiB tmpfs of its own, unmounted afterwards."""
    tree.cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(tree.cache)], check=True)
    try:
        yield tree.cache
    finally:
        subprocess.run(["umount", "-l", str(tree.cache)], check=True)


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def test_files_that_do_not_fit_are_skipped_smaller_later_ones_fit_and_the_reserve_stays_free(
    tree: Tree, small_cache: Path, log_lines: io.StringIO
) -> None:
    tree.model("checkpoints/a.safetensors", 2 * MiB)
    tree.model("checkpoints/b.safetensors", 2 * MiB)
    tree.model("loras/c.safetensors", 512 * KiB)
    tree.config("checkpoints/a.safetensors\ncheckpoints/b.safetensors\nloras/c.safetensors\n")
    report = warm(tree.settings(CACHE_RESERVE_MB="1"))
    assert [r.status for r in report.files] == ["copied", "skipped_space", "copied"]
    assert not (small_cache / "checkpoints" / "b.safetensors").exists()
    assert free_bytes(small_cache) >= MiB
    (skipped,) = events(log_lines, "file_skipped_space")
    assert skipped["path"] == str(tree.models / "checkpoints" / "b.safetensors")
    assert skipped["bytes"] == 2 * MiB
    assert skipped["reserve_bytes"] == MiB
    assert isinstance(skipped["free_bytes"], int)
    assert skipped["free_bytes"] < 3 * MiB
    assert tree.partials() == []


def test_a_file_that_cannot_be_written_fails_with_its_error_and_the_rest_continues(
    tree: Tree,
) -> None:
    tree.model("checkpoints/SDXL/a.safetensors", KiB)
    tree.model("checkpoints/z.safetensors", KiB)
    tree.config("checkpoints/SDXL/a.safetensors\ncheckpoints/z.safetensors\n")
    (tree.cache / "checkpoints").mkdir(parents=True)
    (tree.cache / "checkpoints" / "SDXL").write_text("a file where a folder should be")
    report = warm(tree.settings())
    failed, ok = report.files
    assert failed.status == "failed"
    assert "SDXL" in (failed.error or "")
    assert ok.status == "copied"
    assert report.totals.failed == 1


def test_cancel_mid_copy_stops_removes_temps_and_marks_unfinished_files_interrupted(
    tree: Tree,
) -> None:
    tree.model("checkpoints/big.safetensors", 3 * MiB)
    tree.model("loras/later.safetensors", 3 * MiB)
    tree.config("checkpoints/big.safetensors\nloras/later.safetensors\n")
    cancel = threading.Event()
    box: list[engine.Report] = []
    worker = threading.Thread(
        target=lambda: box.append(
            warm(tree.settings(WARMUP_MAX_MBPS="1", WARMUP_STREAMS="1"), cancel)
        )
    )
    worker.start()
    try:
        wait_for(lambda: tree.partials() != [], 20, "a partial copy", step=0.02)
    finally:
        cancel.set()
        worker.join(30)
    assert not worker.is_alive()
    (report,) = box
    assert report.state == "interrupted"
    assert [r.status for r in report.files] == ["interrupted", "interrupted"]
    assert tree.partials() == []
    assert not (tree.cache / "checkpoints" / "big.safetensors").exists()
    on_disk = read_report(tree.run / "warmup-report.json")
    assert on_disk is not None
    assert on_disk.state == "interrupted"


def test_a_second_warmup_waits_for_the_lock_and_gives_up_when_cancelled(
    tree: Tree, log_lines: io.StringIO
) -> None:
    tree.model("loras/x.safetensors", KiB)
    tree.config("loras/x.safetensors\n")
    tree.run.mkdir()
    holder = os.open(tree.run / "warmup.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        os.write(holder, b"4242\n")
        cancel = threading.Event()
        box: list[engine.Report] = []
        worker = threading.Thread(target=lambda: box.append(warm(tree.settings(), cancel)))
        worker.start()
        try:
            wait_for(
                lambda: events(log_lines, "warmup_waiting_for_lock") != [],
                20,
                "warmup_waiting_for_lock",
                step=0.02,
            )
        finally:
            cancel.set()
            worker.join(30)
    finally:
        os.close(holder)
    (waiting,) = events(log_lines, "warmup_waiting_for_lock")
    assert waiting["holder_pid"] == "4242"
    assert box[0].state == "interrupted"
    assert not (tree.cache / "loras" / "x.safetensors").exists()
    assert not (tree.run / "warmup-report.json").exists()  # the holder's report is not touched


def test_the_report_counts_a_source_open_before_the_open_happens(tree: Tree) -> None:
    src = tree.model("checkpoints/big.safetensors", 2 * MiB)
    tree.config("checkpoints/big.safetensors\n")
    cancel = threading.Event()
    ino = INotify()
    ino.add_watch(src.parent, iflags.OPEN)
    worker = threading.Thread(
        target=warm, args=(tree.settings(WARMUP_MAX_MBPS="1", WARMUP_STREAMS="1"), cancel)
    )
    worker.start()
    try:
        opened: list[object] = []
        deadline = time.monotonic() + 20
        while not opened and time.monotonic() < deadline:
            opened = [e for e in ino.read(timeout=1000) if e.name == src.name]
        report = read_report(tree.run / "warmup-report.json")  # read right after the open
    finally:
        cancel.set()
        worker.join(30)
        ino.close()
    assert opened
    assert report is not None
    (rec,) = report.files
    assert rec.source_opens >= 1
    assert rec.status == "copying"


def test_compact_report_json_is_the_same_document_as_the_indented_one(tree: Tree) -> None:
    tree.model("loras/x.safetensors", KiB)
    tree.config("loras/x.safetensors\nloras/none\n")
    report = warm(tree.settings())
    assert json.loads(report.to_compact_json()) == json.loads(report.to_json())
    on_disk = read_report(tree.run / "warmup-report.json")
    assert on_disk == report


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_and_periodic_progress_lines_on_a_terminal(log_lines: io.StringIO) -> None:
    now = [0.0]
    bar = FakeTTY()
    p = progress.Progress(stream=bar, clock=lambda: now[0])
    now[0] = 1.0
    p.tick(100 * progress.MB, 400 * progress.MB)
    assert bar.getvalue().endswith(progress.bar_line(100 * progress.MB, 400 * progress.MB, 100e6))
    assert events(log_lines, "warmup_progress") == []  # not yet: every few seconds
    now[0] = 6.0
    p.tick(300 * progress.MB, 400 * progress.MB)
    (line,) = events(log_lines, "warmup_progress")
    assert line["done_bytes"] == 300 * progress.MB
    assert line["mb_per_s"] == 50.0
    assert line["eta_seconds"] == 2
    assert bar.getvalue().count("\r\x1b[K") >= 2  # the bar is cleared before a log line


def test_progress_numbers() -> None:
    assert progress.mb_per_s(50_000_000, 2.0) == 25.0
    assert progress.mb_per_s(1, 0.0) == 0.0
    assert progress.eta_seconds(25, 100, 5.0) == 15.0
    assert progress.eta_seconds(25, 100, 0.0) is None
    assert progress.bar_line(0, 0, 0.0, width=4) == "[####] 100%  0/0 MB  0.0 MB/s  ETA --"
    assert progress.bar_line(5 * progress.MB, 10 * progress.MB, 1e6, width=4).startswith(
        "[##..]  50%"
    )


# --- the live report: incremental rendering, grouped writes


def report_of(n: int, statuses: list[str]) -> Report:
    files = [
        FileRecord(
            "loras",
            f"m{i}.safetensors",
            f"/v/loras/m{i}.safetensors",
            f"/c/loras/m{i}.safetensors",
            size=1000 + i,
            status=statuses[i % len(statuses)],  # type: ignore[arg-type]
            line=f"conf:{i + 1}",
        )
        for i in range(n)
    ]
    return Report("running", 42, 1.0, "conf", "/v", "/c", files=files)


def without_seconds(doc: dict[str, object]) -> dict[str, object]:
    totals = dict(doc["totals"])  # type: ignore[call-overload]
    totals.pop("seconds")
    return {**doc, "totals": totals}


changes = st.lists(
    st.one_of(
        st.tuples(st.just("status"), st.integers(0, 39), st.sampled_from(FILE_STATUSES)),
        st.tuples(st.just("progress"), st.integers(0, 39), st.integers(0, 10**9)),
        st.tuples(st.just("measured"), st.integers(0, 39), st.integers(0, 10**9)),
        st.tuples(st.just("opened"), st.integers(0, 39), st.just(0)),
        st.tuples(st.just("flush"), st.just(0), st.just(0)),
    ),
    max_size=60,
)


@given(n=st.integers(1, 40), ops=changes)
@hypothesis_settings(max_examples=60, deadline=None)
def test_the_live_report_file_is_always_the_plain_rendering_of_the_records(
    n: int, ops: list[tuple[str, int, object]]
) -> None:
    report = report_of(n, ["pending", "hit", "missing"])
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "warmup-report.json"
        live = LiveReport(path, report, time.monotonic())
        for op, index, arg in ops:
            key = index % n
            if op == "status":
                live.set_status(key, arg, f"error {key}" if arg == "failed" else None)  # type: ignore[arg-type]
            elif op == "progress":
                live.progressed(key, arg)  # type: ignore[arg-type]
            elif op == "measured":
                live.measured(key, 0.5, arg)  # type: ignore[arg-type]
            elif op == "opened":
                live.opened(key)
            else:
                live.flush()
            if op in ("opened", "flush"):
                on_disk = json.loads(path.read_text())
                assert without_seconds(on_disk) == without_seconds(
                    json.loads(report.to_compact_json())
                )
                expected = asdict(Totals.of(report.files, 0.0))
                assert without_seconds({"totals": on_disk["totals"]})["totals"] == {
                    k: v for k, v in expected.items() if k != "seconds"
                }
        assert live.bytes_copied == sum(f.bytes_copied for f in report.files)


def test_opened_returns_only_once_the_report_file_holds_that_open(tmp_path: Path) -> None:
    report = report_of(6, ["copying"])
    path = tmp_path / "warmup-report.json"
    live = LiveReport(path, report, time.monotonic())
    lagging: list[tuple[int, int, int]] = []

    def stream(key: int) -> None:
        for count in range(1, 31):
            live.opened(key)
            seen = json.loads(path.read_text())["files"][key]["source_opens"]
            if seen < count:
                lagging.append((key, count, seen))

    threads = [threading.Thread(target=stream, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    assert lagging == []
    assert [f["source_opens"] for f in json.loads(path.read_text())["files"]] == [30] * 6


def test_opens_announced_while_a_write_is_under_way_share_the_next_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = report_of(4, ["copying"])
    path = tmp_path / "warmup-report.json"
    live = LiveReport(path, report, time.monotonic())
    writing, release = threading.Event(), threading.Event()
    writes: list[list[int]] = []
    real_write = live_report.write_pieces

    def slow_first_write(target: Path, pieces: list[bytes]) -> None:
        if not writes:
            writing.set()
            assert release.wait(20)
        real_write(target, pieces)
        writes.append([f["source_opens"] for f in json.loads(target.read_text())["files"]])

    monkeypatch.setattr(live_report, "write_pieces", slow_first_write)
    first = threading.Thread(target=live.opened, args=(0,))
    first.start()
    assert writing.wait(20)
    others = [threading.Thread(target=live.opened, args=(k,)) for k in (1, 2, 3)]
    for t in others:
        t.start()
    wait_for(lambda: all(f.source_opens == 1 for f in report.files), 20, "every open", step=0.02)
    release.set()
    for t in (first, *others):
        t.join(20)
    assert writes == [[1, 0, 0, 0], [1, 1, 1, 1]]


def test_a_warmup_of_more_files_than_one_writev_takes_writes_whole_reports_throughout(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    count = durable.IOV_MAX + 20
    for i in range(count):
        tree.model(f"embeddings/e{i:04d}.pt", 100 + i)
    tree.config("embeddings/*\n")
    seen: list[tuple[int, str, int]] = []
    real_write = live_report.write_pieces

    def checked(target: Path, pieces: list[bytes]) -> None:
        real_write(target, pieces)
        doc = json.loads(target.read_text())
        seen.append((len(doc["files"]), doc["state"], doc["totals"]["copied"]))

    monkeypatch.setattr(live_report, "write_pieces", checked)
    report = warm(tree.settings(WARMUP_STREAMS="4"))
    assert report.state == "done"
    assert report.totals.copied == count
    assert seen
    assert {(n, state) for n, state, _ in seen} == {(count, "running")}
    assert [copied for _, _, copied in seen] == sorted(copied for _, _, copied in seen)
    assert read_report(tree.run / "warmup-report.json") == report


def test_each_cache_folder_is_synced_after_its_copies_land_and_before_the_report_says_done(
    tree: Tree, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree.model("loras/a.safetensors", 10 * KiB)
    tree.model("loras/b.safetensors", 10 * KiB, seed=1)
    tree.model("vae/sub/c.pt", 3 * MiB)
    tree.config("loras/*\nvae/**\n")
    synced: list[tuple[Path, list[str], str | None]] = []
    real_sync_dir = durable.sync_dir

    def spy(path: Path) -> None:
        on_disk = read_report(tree.run / "warmup-report.json")
        names = sorted(p.name for p in path.iterdir() if not durable.is_partial(p.name))
        synced.append((path, names, on_disk.state if on_disk else None))
        real_sync_dir(path)

    monkeypatch.setattr(durable, "sync_dir", spy)
    report = warm(tree.settings())
    assert report.state == "done"
    assert {path for path, _, _ in synced} == {tree.cache / "loras", tree.cache / "vae" / "sub"}
    assert {state for _, _, state in synced} == {"running"}
    last = {path: names for path, names, _ in synced}
    assert last[tree.cache / "loras"] == ["a.safetensors", "b.safetensors"]
    assert last[tree.cache / "vae" / "sub"] == ["c.pt"]


def test_a_file_is_skipped_for_space_only_on_a_fresh_answer_from_the_filesystem(
    small_cache: Path,
) -> None:
    space = engine.Space(small_cache)
    with CopyPool(
        streams=1, chunk_bytes=MiB, cancel=threading.Event(), on_done=lambda o: None
    ) as idle_pool:
        assert space.shortfall(idle_pool, MiB, 0, 0) is None
        space.promised(100 * MiB)  # the estimate now says the cache is full, the disk does not
        assert space.shortfall(idle_pool, MiB, 0, 0) is None
        assert space.shortfall(idle_pool, 8 * MiB, 0, 0) == free_bytes(small_cache)
        assert space.shortfall(idle_pool, MiB, 4 * MiB, 0) == free_bytes(small_cache)
