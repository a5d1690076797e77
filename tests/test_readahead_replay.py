"""The replay reads the startup list into the page cache; the session ties a start together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from comfy_init.readahead import replay, report, startlist
from comfy_init.readahead.replay import Replay
from comfy_init.readahead.session import Options, Session
from comfy_init.readahead.startlist import Entry
from comfy_init.residency import resident

KiB = 1024
REPORT = "readahead-report.json"


def write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return path


def drop(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    r = resident(path)
    if r is not None and r[0] == r[1] > 0:
        pytest.skip(f"the filesystem under {path.parent} keeps every page in memory (tmpfs?)")


def entry(root: Path, rel: str) -> Entry:
    st = os.stat(root / rel)
    return Entry(rel, "file", st.st_size, st.st_mtime_ns)


def run(root: Path, entries: list[Entry], **kw: object) -> replay.Outcome:
    options: dict[str, object] = {"streams": 4, "chunk_bytes": 64 * KiB, **kw}
    r = Replay(root, entries, cancel=threading.Event(), **options)  # type: ignore[arg-type]
    assert r.start().wait(30), "the replay did not finish"
    return r.outcome


def test_plan_lists_folders_first_then_files_in_list_order_as_ranges() -> None:
    entries = [
        Entry("a.pyc", "file", 10, 1),
        Entry("pkg", "dir"),
        Entry("big.so", "file", 250, 1),
        Entry("empty", "file", 0, 1),
    ]
    tasks = replay.plan(entries, chunk_bytes=100)
    assert [(t.entry.path, t.offset, t.length, t.first) for t in tasks] == [
        ("pkg", 0, 0, True),
        ("a.pyc", 0, -1, True),
        ("big.so", 0, 100, True),
        ("big.so", 100, 100, False),
        ("big.so", 200, -1, False),  # the last range reads to the end, whatever the size now
        ("empty", 0, -1, True),
    ]


def test_listed_files_become_resident_and_each_says_when(tmp_path: Path) -> None:
    files = [write(tmp_path / "venv" / f"m{i}.pyc", 20 * KiB) for i in range(5)]
    files.append(write(tmp_path / "venv" / "lib" / "big.so", 1000 * KiB))
    for f in files:
        drop(f)
        assert resident(f) == (0, f.stat().st_size)
    entries = [Entry("venv", "dir")] + [
        entry(tmp_path, str(f.relative_to(tmp_path))) for f in files
    ]
    before = time.monotonic()
    outcome = run(tmp_path, entries)
    for f in files:
        assert resident(f) == (f.stat().st_size, f.stat().st_size), f
    assert (outcome.files, outcome.dirs, outcome.missing, outcome.changed) == (6, 1, 0, 0)
    assert outcome.bytes == sum(f.stat().st_size for f in files)
    assert set(outcome.done_at) == {e.path for e in entries if e.kind == "file"}
    assert all(before <= t <= outcome.finished for t in outcome.done_at.values())  # type: ignore[operator]


def test_a_changed_file_is_read_whole_and_a_gone_one_is_counted(tmp_path: Path) -> None:
    grown = write(tmp_path / "grown.pyc", 10 * KiB)
    listed = entry(tmp_path, "grown.pyc")
    write(tmp_path / "grown.pyc", 300 * KiB)  # changed after it was listed
    drop(grown)
    entries = [
        listed,
        Entry("gone.pyc", "file", 5, 1),
        Entry("gone_dir", "dir"),
    ]
    outcome = run(tmp_path, entries)
    assert resident(grown) == (300 * KiB, 300 * KiB)
    assert (outcome.files, outcome.bytes, outcome.changed, outcome.missing) == (1, 300 * KiB, 1, 2)


def test_a_cancelled_replay_reads_nothing(tmp_path: Path) -> None:
    f = write(tmp_path / "a.pyc", 100 * KiB)
    drop(f)
    cancel = threading.Event()
    cancel.set()
    r = Replay(tmp_path, [entry(tmp_path, "a.pyc")], streams=2, chunk_bytes=KiB, cancel=cancel)
    assert r.start().wait(10)
    assert r.outcome.bytes == 0
    assert resident(f) == (0, 100 * KiB)


PROGRAM = """\
import json, os, sys
sys.path.insert(0, os.path.join(sys.argv[1], "venv"))
import pkg.mod
with open(os.path.join(sys.argv[1], "venv", "data.json")) as fh:
    fh.read()
print("ready", flush=True)
"""


def make_program(root: Path) -> Path:
    (root / "ComfyUI").mkdir(parents=True)
    write(root / "venv" / "pkg" / "__init__.py", 0)
    (root / "venv" / "pkg" / "mod.py").write_text("VALUE = 1\n")
    (root / "venv" / "data.json").write_text("[]")
    main = root / "ComfyUI" / "main.py"
    main.write_text(PROGRAM)
    return main


def start_once(root: Path, run_dir: Path, enabled: bool = True) -> Session:
    session = Session.begin(
        Options(
            comfyui_path=root / "ComfyUI",
            report_path=run_dir / REPORT,
            trace_dir=run_dir / "trace",
            enabled=enabled,
            streams=4,
        )
    )
    if session.replay is None and enabled:
        deadline = time.monotonic() + 10
        while session.report.state == "reading" and time.monotonic() < deadline:
            time.sleep(0.01)
    env = {**os.environ, **session.environment(None)}
    done = subprocess.run(
        [sys.executable, str(root / "ComfyUI" / "main.py"), str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "ready" in done.stdout
    session.comfyui_ready(time.monotonic())
    if enabled:
        assert session.finished.wait(30)
    return session


def test_a_start_records_its_files_and_the_next_reads_them_ahead(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    make_program(root)
    run_dir = tmp_path / "run"
    first = start_once(root, run_dir)
    listed = startlist.load(startlist.location(root / "ComfyUI"))
    paths = [e.path for e in listed]
    assert "ComfyUI/main.py" in paths
    assert "venv/data.json" in paths
    assert "venv/pkg/mod.py" in paths or any(
        p.startswith("venv/pkg/__pycache__/mod.") for p in paths
    )
    assert "venv/pkg" in paths  # the import system listed the package folder
    assert all(not p.startswith("/") for p in paths)
    rep = report.read(run_dir / REPORT)
    assert rep.listed_files == 0
    assert rep.opens_unlisted == rep.recorded_files == len([e for e in listed if e.kind == "file"])
    assert first.report.state == "done"

    second = start_once(root, run_dir)
    rep = report.read(run_dir / REPORT)
    assert rep.state == "done"
    assert rep.listed_files == len([e for e in listed if e.kind == "file"])
    assert rep.files == rep.listed_files
    assert rep.missing == 0
    assert rep.opens_prefetched + rep.opens_early == rep.listed_files
    assert rep.opens_unlisted == 0
    assert second.replay is not None


def test_turned_off_there_is_no_hook_no_list_and_nothing_read(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    make_program(root)
    session = start_once(root, tmp_path / "run", enabled=False)
    assert session.environment("/x") == {}
    assert not startlist.location(root / "ComfyUI").exists()
    assert not (tmp_path / "run" / "trace").exists()
    assert json.loads((tmp_path / "run" / REPORT).read_text())["state"] == "off"


def test_an_unreadable_list_is_reported_and_replaced_by_this_start(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    make_program(root)
    bad = startlist.location(root / "ComfyUI")
    bad.parent.mkdir(parents=True)
    bad.write_text("{broken")
    start_once(root, tmp_path / "run")
    rep = report.read(tmp_path / "run" / REPORT)
    assert "not JSON" in rep.list_error
    assert str(bad) in rep.list_error
    assert startlist.load(bad)  # rewritten from this start


def test_an_unwritable_trace_folder_still_reads_ahead_and_records_nothing(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    make_program(root)
    blocker = tmp_path / "run"
    blocker.write_text("a file where the run folder should be")
    f = write(root / "venv" / "big.bin", 64 * KiB)
    drop(f)
    startlist.save(startlist.location(root / "ComfyUI"), [entry(root, "venv/big.bin")], 0.0)
    session = Session.begin(
        Options(
            comfyui_path=root / "ComfyUI",
            report_path=tmp_path / REPORT,
            trace_dir=blocker / "trace",
        )
    )
    assert session.environment(None) == {}  # ComfyUI starts without the hook
    deadline = time.monotonic() + 10
    while session.report.state == "reading" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert resident(f) == (64 * KiB, 64 * KiB)
    session.comfyui_ready(time.monotonic())
    assert not session.finished.wait(0.5)  # nothing recorded: the list stays as it was
    assert [e.path for e in startlist.load(startlist.location(root / "ComfyUI"))] == [
        "venv/big.bin"
    ]
