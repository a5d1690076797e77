"""The log relay: every new line of every program log reaches stdout exactly once."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_init.pid1 import relay as relay_module
from comfy_init.pid1.relay import LogRelay

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def out(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    path = tmp_path / "stdout"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        yield fd, path
    finally:
        os.close(fd)


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(text)


def test_new_lines_of_every_log_are_relayed_once(tmp_path: Path, out: tuple[int, Path]) -> None:
    fd, got = out
    logs = tmp_path / "logs"
    logs.mkdir()
    relay = LogRelay(logs, out_fd=fd)
    append(logs / "comfyui.log", "one\ntwo\n")
    relay.pump()
    append(logs / "comfyui.log", "three\n")
    append(logs / "metrics.log", "m1\n")
    relay.pump()
    relay.pump()
    assert sorted(got.read_text().splitlines()) == ["m1", "one", "three", "two"]


def test_lines_already_there_at_start_are_not_replayed(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    (tmp_path / "comfyui.log").write_text("old run\n")
    relay = LogRelay(tmp_path, out_fd=fd)
    append(tmp_path / "comfyui.log", "new run\n")
    relay.pump()
    assert got.read_text() == "new run\n"


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    log = tmp_path / "comfyui.log"
    relay = LogRelay(tmp_path, out_fd=fd)
    append(log, "a\n")
    relay.pump()
    append(log, "b\n")  # written before the rotation, not yet relayed
    log.rename(tmp_path / "comfyui.log.1")
    append(log, "c\n")
    relay.pump()
    relay.pump()
    assert got.read_text() == "a\nb\nc\n"


def test_truncation_in_place_starts_again_from_the_top(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    log = tmp_path / "comfyui.log"
    relay = LogRelay(tmp_path, out_fd=fd)
    append(log, "long first line\n")
    relay.pump()
    log.write_text("x\n")
    relay.pump()
    assert got.read_text() == "long first line\nx\n"


def test_an_unfinished_line_waits_for_its_end_and_is_flushed_at_stop(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    log = tmp_path / "comfyui.log"
    relay = LogRelay(tmp_path, out_fd=fd)
    append(log, "half")
    relay.pump()
    assert got.read_text() == ""
    append(log, " line\nprogress 50%")
    relay.pump()
    assert got.read_text() == "half line\n"
    relay.stop()
    assert got.read_text() == "half line\nprogress 50%"


def test_relay_thread_follows_a_file_created_after_it_started(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    relay = LogRelay(tmp_path, out_fd=fd, poll_seconds=0.02).start()
    try:
        append(tmp_path / "warmup.log", "warming\n")
        deadline = time.monotonic() + 5
        while got.read_text() != "warming\n" and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        relay.stop()
    assert got.read_text() == "warming\n"


# --- the thread: woken by inotify, not by a timer


@pytest.fixture
def no_timer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither the safety look nor the no-inotify fallback comes within a test's time: a
    line that arrives was relayed because inotify woke the thread."""
    monkeypatch.setattr(relay_module, "FALLBACK_POLL_SECONDS", 3600.0)


def wait_text(path: Path, want: str, seconds: float = 5) -> str:
    deadline = time.monotonic() + seconds
    while (text := path.read_bytes().decode()) != want and time.monotonic() < deadline:
        time.sleep(0.01)
    return text


@pytest.mark.usefixtures("no_timer")
def test_a_written_line_wakes_the_relay_without_any_timer(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    append(tmp_path / "comfyui.log", "before start\n")
    relay = LogRelay(tmp_path, out_fd=fd, poll_seconds=3600).start()
    try:
        append(tmp_path / "comfyui.log", "one\n")
        assert wait_text(got, "one\n") == "one\n"
        append(tmp_path / "comfyui.log", "two\n")
        assert wait_text(got, "one\ntwo\n") == "one\ntwo\n"
    finally:
        relay.stop()
    assert got.read_text() == "one\ntwo\n"


@pytest.mark.usefixtures("no_timer")
def test_a_file_written_between_construction_and_start_is_relayed_from_its_start(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    relay = LogRelay(tmp_path, out_fd=fd, poll_seconds=3600)
    append(tmp_path / "supervisord.log", "spawned\n")
    relay.start()
    try:
        assert wait_text(got, "spawned\n") == "spawned\n"
    finally:
        relay.stop()


@pytest.mark.usefixtures("no_timer")
def test_the_thread_follows_rotation_and_truncation_with_each_line_once(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    log = tmp_path / "comfyui.log"
    log.write_text("")
    relay = LogRelay(tmp_path, out_fd=fd, poll_seconds=3600).start()
    try:
        append(log, "a\n")
        assert wait_text(got, "a\n") == "a\n"
        append(log, "b\n")
        log.rename(tmp_path / "comfyui.log.1")  # as supervisord rotates
        append(log, "c\n")
        assert wait_text(got, "a\nb\nc\n") == "a\nb\nc\n"
        append(tmp_path / "comfyui.log.1", "never followed\n")
        append(log, "a longer line\n")
        assert wait_text(got, "a\nb\nc\na longer line\n") == "a\nb\nc\na longer line\n"
        log.write_text("d\n")  # truncated in place (supervisorctl clear)
        want = "a\nb\nc\na longer line\nd\n"
        assert wait_text(got, want) == want
    finally:
        relay.stop()
    assert got.read_text() == want


@pytest.mark.usefixtures("no_timer")
def test_the_thread_writes_an_unfinished_line_once_it_is_overdue(
    tmp_path: Path, out: tuple[int, Path]
) -> None:
    fd, got = out
    relay = LogRelay(tmp_path, out_fd=fd, poll_seconds=3600).start()
    try:
        append(tmp_path / "comfyui.log", "done\nprogress 50%")
        assert wait_text(got, "done\nprogress 50%") == "done\nprogress 50%"
        append(tmp_path / "comfyui.log", "\rprogress 100%\n")
        want = "done\nprogress 50%\rprogress 100%\n"
        assert wait_text(got, want) == want
    finally:
        relay.stop()


def test_stop_wakes_a_sleeping_relay_and_its_thread_ends(
    tmp_path: Path, out: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fd, got = out
    monkeypatch.setattr(relay_module, "JOIN_SECONDS", 3600.0)  # only the wake-up ends it
    relay = LogRelay(tmp_path, out_fd=fd, poll_seconds=3600).start()
    append(tmp_path / "comfyui.log", "last words")
    relay.stop()
    assert [t for t in threading.enumerate() if t.name == "log-relay"] == []
    assert got.read_text() == "last words"


@pytest.mark.usefixtures("no_timer")
def test_a_burst_of_writes_is_gathered_into_a_few_reads_each_line_once_in_order(
    tmp_path: Path, out: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    fd, got = out
    relay = LogRelay(tmp_path, out_fd=fd, poll_seconds=3600).start()
    writes: list[bytes] = []
    real_write = relay._write
    monkeypatch.setattr(relay, "_write", lambda data: (writes.append(data), real_write(data)))
    lines = [f"step {i}\n" for i in range(40)]
    try:
        with (tmp_path / "comfyui.log").open("a", encoding="utf-8") as log:
            for line in lines:  # one write(2) per line, a few ms apart: a progress bar
                log.write(line)
                log.flush()
                time.sleep(0.005)
        assert wait_text(got, "".join(lines)) == "".join(lines)
    finally:
        relay.stop()
    assert len(writes) <= 10  # not one wake-up per line
