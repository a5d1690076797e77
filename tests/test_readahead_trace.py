"""What ComfyUI read, in first-read order: trace lines, mapped libraries, the startup list."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfy_init.readahead import startlist, trace
from comfy_init.readahead.startlist import Entry, ListUnreadable
from comfy_init.readahead.trace import Seen

ROOT = "/workspace"


def test_trace_lines_parse_and_torn_or_foreign_lines_are_skipped() -> None:
    lines = [
        "10.5\tf\t/workspace/ComfyUI/main.py\n",
        "10.6\td\t/workspace/venv/lib\n",
        "10.7\tx\t/workspace/venv/lib/ext.so\n",
        "10.8\tl\t/workspace/venv/lib/libz.so\n",
        "10.9\tf\t/workspace/ComfyUI/no",  # a torn last line is still a whole path here
        "11.0\tq\t/workspace/x\n",  # unknown kind
        "nan\tf\t/workspace/y\n",
        "oops\tf\t/workspace/z\n",
        "11.1\tf\trelative/path\n",
        "11.2\tf\n",
    ]
    assert trace.parse_lines(lines) == [
        (10.5, "file", "/workspace/ComfyUI/main.py"),
        (10.6, "dir", "/workspace/venv/lib"),
        (10.7, "file", "/workspace/venv/lib/ext.so"),
        (10.8, "file", "/workspace/venv/lib/libz.so"),
        (10.9, "file", "/workspace/ComfyUI/no"),
    ]


def test_mapped_files_are_the_named_mappings_once_each_without_deleted_ones() -> None:
    maps = (
        "7f00-7f10 r--p 00000000 00:2a 12 /workspace/venv/lib/libtorch.so\n"
        "7f10-7f20 r-xp 00010000 00:2a 12 /workspace/venv/lib/libtorch.so\n"
        "7f20-7f30 rw-p 00000000 00:00 0 \n"
        "7f30-7f40 rw-p 00000000 00:00 0 [heap]\n"
        "7f40-7f50 r--p 00000000 00:2a 13 /workspace/old.so (deleted)\n"
        "7f50-7f60 r--p 00000000 08:01 14 /usr/lib/libc.so.6\n"
    )
    assert trace.mapped_files(maps) == ["/workspace/venv/lib/libtorch.so", "/usr/lib/libc.so.6"]


def test_observe_keeps_first_read_order_inside_the_root_before_ready() -> None:
    events = [
        (3.0, "file", "/workspace/venv/b.pyc"),
        (1.0, "dir", "/workspace/venv"),
        (2.0, "file", "/workspace/venv/a.pyc"),
        (2.5, "file", "/usr/lib/python3.11/os.pyc"),  # not on the volume
        (4.0, "file", "/workspace/venv/a.pyc"),  # read again by another process: first wins
        (9.0, "file", "/workspace/ComfyUI/late.json"),  # after ComfyUI answered
        (2.2, "file", "/workspace/../etc/passwd"),
    ]
    seen = trace.observe(events, [], ROOT, until=5.0)
    assert seen == [
        Seen("venv", "dir", 1.0),
        Seen("venv/a.pyc", "file", 2.0),
        Seen("venv/b.pyc", "file", 3.0),
    ]


def test_a_library_only_mapped_is_fetched_when_its_package_starts_loading() -> None:
    events = [
        (1.0, "file", "/workspace/venv/site/numpy/__init__.pyc"),
        (5.0, "file", "/workspace/venv/site/torch/__init__.pyc"),
        (6.0, "file", "/workspace/venv/site/torch/_C.so"),
        (7.0, "file", "/workspace/venv/site/torch/nn/x.pyc"),
    ]
    mapped = [
        "/workspace/venv/site/torch/_C.so",  # also traced: its traced time stays
        "/workspace/venv/site/torch/lib/libtorch_cpu.so",  # nearest traced folder: torch/
        "/workspace/other/libfoo.so",  # no traced folder above it: the start of the trace
        "/usr/lib/libc.so.6",
    ]
    seen = {s.path: s.at for s in trace.observe(events, mapped, ROOT, until=10.0)}
    assert seen["venv/site/torch/lib/libtorch_cpu.so"] == 5.0
    assert seen["venv/site/torch/_C.so"] == 6.0
    assert seen["other/libfoo.so"] == 1.0
    assert "/usr/lib/libc.so.6" not in seen
    assert len(seen) == 6


paths = st.lists(
    st.tuples(
        st.floats(0, 100),
        st.sampled_from(["file", "dir"]),
        st.from_regex(r"/(workspace|usr)(/[a-z.]{1,3}){1,3}", fullmatch=True),
    ),
    max_size=30,
)


@given(paths, st.floats(0, 100))
def test_observe_lists_each_path_once_inside_the_root_in_time_order(
    events: list[tuple[float, trace.Kind, str]], until: float
) -> None:
    seen = trace.observe(events, [], ROOT, until)
    keys = [(s.kind, s.path) for s in seen]
    assert len(keys) == len(set(keys))
    assert [s.at for s in seen] == sorted(s.at for s in seen)
    for s in seen:
        assert s.at <= until
        assert not s.path.startswith("/")
        assert ".." not in s.path.split("/")


def test_startlist_round_trips_and_is_relative_to_the_volume_root(tmp_path: Path) -> None:
    comfyui = tmp_path / "ComfyUI"
    entries = [
        Entry("venv/lib", "dir"),
        Entry("venv/lib/a.pyc", "file", 123, 1_700_000_000_000_000_000),
    ]
    path = startlist.location(comfyui)
    assert path == comfyui / ".comfy-init" / "startup-files.json"
    assert startlist.volume_root(comfyui) == tmp_path
    startlist.save(path, entries, 1.5)
    assert startlist.load(path) == entries
    assert [p.name for p in path.parent.iterdir()] == ["startup-files.json"]  # no temp left


def test_no_startlist_is_an_empty_one(tmp_path: Path) -> None:
    assert startlist.load(tmp_path / "missing.json") == []


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("{not json", "list.json:1: not JSON"),
        ('{"format": "other"}', "not a startup list"),
        ('{"format": "comfy-init-startup-files", "version": 99}', "version 99, this reads 1"),
        (
            '{"format": "comfy-init-startup-files", "version": 1, "entries": [["../x", "d"]]}',
            "entry 0 is malformed: ['../x', 'd']",
        ),
        (
            '{"format": "comfy-init-startup-files", "version": 1, "entries": [["/etc/x", "d"]]}',
            "entry 0 is malformed",
        ),
        (
            '{"format": "comfy-init-startup-files", "version": 1, "entries": [["a", "f", 1]]}',
            "entry 0 is malformed",
        ),
    ],
)
def test_a_bad_startlist_is_refused_naming_the_file_and_why(
    tmp_path: Path, text: str, why: str
) -> None:
    path = tmp_path / "list.json"
    path.write_text(text)
    with pytest.raises(ListUnreadable) as err:
        startlist.load(path)
    assert str(path) in str(err.value)
    assert why in str(err.value)


def test_refresh_takes_size_and_mtime_now_and_drops_what_is_gone(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.pyc").write_bytes(b"x" * 10)
    (tmp_path / "b.so").write_bytes(b"y" * 20)
    (tmp_path / "became_dir").mkdir()
    seen = [
        Seen("pkg", "dir", 0.0),
        Seen("pkg/a.pyc", "file", 1.0),
        Seen("gone.pyc", "file", 1.5),
        Seen("b.so", "file", 2.0),
        Seen("became_dir", "file", 3.0),
    ]
    stats = {}
    for s in seen:
        try:
            stats[s.path] = os.stat(tmp_path / s.path)
        except FileNotFoundError:
            stats[s.path] = None  # type: ignore[assignment]
    entries = startlist.refresh(seen, stats)
    b = os.stat(tmp_path / "b.so")
    assert [e.path for e in entries] == ["pkg", "pkg/a.pyc", "b.so"]
    assert entries[2] == Entry("b.so", "file", 20, b.st_mtime_ns)
