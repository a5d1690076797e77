"""The log relay: every new line of every program log reaches stdout exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    import time

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
