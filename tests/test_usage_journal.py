"""The usage journal: its line format, torn and bad lines, appends, compaction and pruning."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfy_init.usage import journal, records
from comfy_init.usage.records import DAY_SECONDS, Boot, DayTotal, Open, Record

NOW = 1_790_000_000.0 + 12 * 3600  # noon UTC of a day


def opened(t: float, name: str = "a.safetensors", type_: str = "checkpoints") -> Open:
    return Open(t, type_, name, 1000, 5, "volume")


names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)
times = st.floats(0, 4e9, allow_nan=False).map(lambda t: round(t, 3))
counts = st.integers(0, 2**62)
open_records = st.builds(
    Open, times, names, names, counts, counts, st.sampled_from(records.LOCATIONS)
)
any_record = st.one_of(
    open_records,
    st.builds(Boot, times),
    st.builds(
        DayTotal, st.integers(0, 50000), names, names, counts, counts, st.integers(1, 10**6), times
    ),
)


@settings(max_examples=300, deadline=None)
@given(record=any_record)
def test_every_record_reads_back_as_written_on_one_line(record: Record) -> None:
    line = records.encode(record)
    assert line.endswith("\n")
    assert "\n" not in line[:-1]
    assert records.decode(line) == ("ok", record)


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        '{"v":1,"k":"open","t":1,"type":"checkpoints"',  # cut in the middle
        "[1, 2]",
        '{"k":"boot","t":1}',  # no version
        '{"v":"1","k":"boot","t":1}',
        '{"v":true,"k":"boot","t":1}',
        '{"v":0,"k":"boot","t":1}',
        '{"v":1,"k":"reboot","t":1}',
        '{"v":1,"k":"boot","t":-5}',
        '{"v":1,"k":"boot","t":"yesterday"}',
        '{"v":1,"k":"open","t":1,"type":"checkpoints","name":"a","size":-1,"mtime_ns":1,'
        '"from":"volume"}',
        '{"v":1,"k":"open","t":1,"type":"checkpoints","name":"a","size":1.5,"mtime_ns":1,'
        '"from":"volume"}',
        '{"v":1,"k":"open","t":1,"type":"checkpoints","name":"a","size":true,"mtime_ns":1,'
        '"from":"volume"}',
        '{"v":1,"k":"open","t":1,"type":"checkpoints","name":"","size":1,"mtime_ns":1,'
        '"from":"volume"}',
        '{"v":1,"k":"open","t":1,"type":"checkpoints","name":"a","size":1,"mtime_ns":1,'
        '"from":"elsewhere"}',
        '{"v":1,"k":"day","day":3,"type":"loras","name":"a","size":1,"mtime_ns":1,"opens":0,'
        '"last":1}',
    ],
)
def test_a_broken_line_is_corrupt_not_an_error(line: str) -> None:
    assert records.decode(line) == ("corrupt", None)


def test_a_line_from_a_newer_format_is_skipped_as_future() -> None:
    line = json.dumps({"v": records.FORMAT + 1, "k": "open", "whatever": "changed"})
    assert records.decode(line) == ("future", None)


def test_reader_skips_a_torn_last_line_and_counts_every_kind_of_skip() -> None:
    good = records.encode(opened(NOW)) + records.encode(Boot(NOW))
    data = (
        good
        + "garbage\n"
        + json.dumps({"v": 99, "k": "open"})
        + "\n\n"
        + records.encode(opened(NOW + 1))[:30]
    ).encode()
    contents = journal.parse(data)
    assert contents.records == [opened(NOW), Boot(NOW)]
    assert contents.skipped == {"torn": 1, "corrupt": 1, "future": 1}


def test_a_line_that_is_not_utf8_is_corrupt() -> None:
    contents = journal.parse(b"\xff\xfe{}\n" + records.encode(Boot(NOW)).encode())
    assert contents.records == [Boot(NOW)]
    assert contents.skipped["corrupt"] == 1


def test_append_after_a_killed_writer_starts_a_new_line(tmp_path: Path) -> None:
    path = tmp_path / "usage" / "pod-a.jsonl"
    journal.append(path, [opened(NOW)])
    with path.open("ab") as fh:  # the pod was killed half way through a line
        fh.write(records.encode(opened(NOW + 1)).encode()[:25])
    size = journal.append(path, [opened(NOW + 2), Boot(NOW + 3)])
    assert size == path.stat().st_size
    contents = journal.read(path)
    assert contents.records == [opened(NOW), opened(NOW + 2), Boot(NOW + 3)]
    assert contents.skipped == {"torn": 0, "corrupt": 1, "future": 0}


def test_pod_name_comes_from_runpod_then_hostname_and_is_a_safe_file_name() -> None:
    assert journal.pod_name({"RUNPOD_POD_ID": "abc123", "HOSTNAME": "h"}) == "abc123"
    assert journal.pod_name({"HOSTNAME": "worker-7"}) == "worker-7"
    assert journal.pod_name({"RUNPOD_POD_ID": "../../etc/passwd"}) == "_.._etc_passwd"
    assert journal.pod_name({"HOSTNAME": "..."}) == "pod"
    assert journal.pod_name({})  # the host name, whatever it is
    assert "/" not in journal.pod_name({})


def test_read_all_reads_every_pods_journal_but_no_temp_file(tmp_path: Path) -> None:
    journal.append(journal.path_for(tmp_path, "a"), [opened(NOW)])
    journal.append(journal.path_for(tmp_path, "b"), [opened(NOW, "b.safetensors")])
    (tmp_path / ".a.jsonl.x.tmp").write_text(records.encode(opened(NOW, "tmp.safetensors")))
    (tmp_path / "notes.txt").write_text("hello\n")
    found = journal.read_all(tmp_path)
    assert sorted(found) == ["a", "b"]
    assert [r.name for r in found["b"].records] == ["b.safetensors"]  # type: ignore[union-attr]
    assert journal.read_all(tmp_path / "missing") == {}


def _opens_by_model(recs: list[Record], since_day: int) -> Counter[tuple[str, str]]:
    c: Counter[tuple[str, str]] = Counter()
    for r in recs:
        if isinstance(r, Open) and records.day_of(r.time) >= since_day:
            c[r.key] += 1
        elif isinstance(r, DayTotal) and r.day >= since_day:
            c[r.key] += r.opens
    return c


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.floats(0, 30 * DAY_SECONDS), st.sampled_from(["a", "b", "c", "d"])),
        max_size=200,
    ),
    keep_recent=st.integers(0, 50),
    keep_days=st.integers(1, 20),
)
def test_compaction_keeps_every_open_in_the_window_and_only_the_recent_records_raw(
    events: list[tuple[float, str]], keep_recent: int, keep_days: int
) -> None:
    now = NOW + 30 * DAY_SECONDS
    recs: list[Record] = [opened(now - age, name) for age, name in sorted(events, reverse=True)]
    first_day = records.day_of(now) - keep_days
    kept = journal.compact(recs, now, keep_days, keep_recent)
    assert _opens_by_model(kept, first_day) == _opens_by_model(recs, first_day)
    assert all(
        (r.day if isinstance(r, DayTotal) else records.day_of(r.time)) >= first_day for r in kept
    )
    raw = [r for r in kept if not isinstance(r, DayTotal)]
    assert raw == [r for r in recs[max(0, len(recs) - keep_recent) :] if r in raw]
    assert len(raw) <= keep_recent
    models_days = {(records.day_of(r.time), r.key) for r in recs if isinstance(r, Open)}
    assert len(kept) - len(raw) <= len(models_days)
    # compacting again changes nothing but moves raw records into totals
    again = journal.compact(kept, now, keep_days, keep_recent)
    assert _opens_by_model(again, first_day) == _opens_by_model(recs, first_day)


def test_compaction_merges_day_totals_and_keeps_the_newest_size(tmp_path: Path) -> None:
    day = records.day_of(NOW)
    recs: list[Record] = [
        DayTotal(day, "loras", "x.safetensors", 10, 1, 2, NOW - 100),
        Open(NOW - 50, "loras", "x.safetensors", 20, 2, "cache"),
        Boot(NOW - 10),
        Open(NOW - 5, "loras", "x.safetensors", 30, 3, "volume"),
    ]
    kept = journal.compact(recs, NOW, keep_days=14, keep_recent=2)
    assert kept == [
        DayTotal(day, "loras", "x.safetensors", 20, 2, 3, NOW - 50),
        Boot(NOW - 10),
        Open(NOW - 5, "loras", "x.safetensors", 30, 3, "volume"),
    ]


def test_writer_compacts_past_its_size_then_again_once_doubled(tmp_path: Path) -> None:
    path = tmp_path / "pod.jsonl"
    writer = journal.Writer(path, keep_days=14, compact_bytes=4096, keep_recent=10)
    compactions = []
    for i in range(400):
        writer.write([opened(NOW - DAY_SECONDS * 3 + i, f"m{i % 5}.safetensors")])
        kept = writer.compact_if_grown(NOW)
        if kept is not None:
            compactions.append((i, kept, path.stat().st_size))
    assert len(compactions) > 5
    assert all(kept <= 10 + 5 for _, kept, _ in compactions)  # 10 recent + 5 models' day
    contents = journal.read(path)
    assert _opens_by_model(contents.records, 0) == Counter(
        {("checkpoints", f"m{k}.safetensors"): 80 for k in range(5)}
    )
    assert path.stat().st_size < 4096 * 2 + 200  # bounded
    assert contents.skipped == {"torn": 0, "corrupt": 0, "future": 0}


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_prune_removes_silent_journals_and_stale_temp_files_only(tmp_path: Path) -> None:
    old = journal.path_for(tmp_path, "old")
    fresh = journal.path_for(tmp_path, "fresh")
    leftover = tmp_path / ".old.jsonl.123.456.pruning"
    recent_tmp = tmp_path / ".fresh.jsonl.abc.tmp"
    for p in (old, fresh, leftover, recent_tmp):
        journal.append(p, [opened(NOW)])
    _age(old, 15 * DAY_SECONDS)
    _age(leftover, 15 * DAY_SECONDS)
    removed = journal.prune(tmp_path, 14 * DAY_SECONDS)
    assert sorted(removed) == sorted([old, leftover])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([fresh.name, recent_tmp.name])
    assert journal.prune(tmp_path / "missing", 1.0) == []


def test_prune_leaves_a_journal_another_pruner_is_retiring_right_now(tmp_path: Path) -> None:
    """Another pod renamed this stale journal a moment ago and is still deciding whether it
    was written meanwhile: it is not a leftover yet, whatever its mtime."""
    at_work = tmp_path / f".pod1.jsonl.77.{time.time_ns()}.pruning"
    abandoned = tmp_path / f".pod2.jsonl.78.{time.time_ns() - 2 * 3600 * 10**9}.pruning"
    for p in (at_work, abandoned):
        journal.append(p, [opened(NOW)])
        _age(p, 30 * DAY_SECONDS)
    assert journal.prune(tmp_path, DAY_SECONDS) == [abandoned]
    assert at_work.exists()


def test_two_pods_pruning_at_once_remove_each_journal_once(tmp_path: Path) -> None:
    paths = [journal.path_for(tmp_path, f"pod{i}") for i in range(40)]
    for p in paths:
        journal.append(p, [opened(NOW)])
        _age(p, 30 * DAY_SECONDS)
    results: list[list[Path]] = []
    threads = [
        threading.Thread(target=lambda: results.append(journal.prune(tmp_path, DAY_SECONDS)))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results[0] + results[1]) == sorted(paths)
    assert list(tmp_path.iterdir()) == []


def _prune_while_appending(tmp_path: Path, restart: bool) -> Path:
    """A pod is appending (holds the shared lock) when another pod prunes its journal."""
    path = journal.path_for(tmp_path, "busy")
    journal.append(path, [opened(NOW)])
    _age(path, 30 * DAY_SECONDS)
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    fcntl.flock(fd, fcntl.LOCK_SH)
    pruned: list[list[Path]] = []
    pruner = threading.Thread(target=lambda: pruned.append(journal.prune(tmp_path, DAY_SECONDS)))
    pruner.start()
    deadline = time.monotonic() + 5
    while path.exists() and time.monotonic() < deadline:  # the pruner renamed it away
        time.sleep(0.01)
    assert not path.exists()
    os.write(fd, records.encode(opened(NOW + 1)).encode())  # the append in progress lands
    if restart:  # the pod's next batch started a new journal under the old name
        journal.append(path, [opened(NOW + 2)])
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    pruner.join(10)
    assert pruned == [[]]
    return path


def test_a_journal_written_while_it_is_pruned_is_put_back(tmp_path: Path) -> None:
    path = _prune_while_appending(tmp_path, restart=False)
    assert journal.read(path).records == [opened(NOW), opened(NOW + 1)]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_a_pruned_journal_written_meanwhile_joins_the_pods_new_journal(tmp_path: Path) -> None:
    path = _prune_while_appending(tmp_path, restart=True)
    assert sorted(r.time for r in journal.read(path).records) == [NOW, NOW + 1, NOW + 2]
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
