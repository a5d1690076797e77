"""Durable files: a reader sees the old file or the new one, never a part; nothing is left
behind when a write fails; copies in progress have a name ComfyUI never uses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from comfy_init.files import durable
from comfy_init.files.durable import PARTIAL_SUFFIX


def test_partial_name_is_hidden_beside_the_destination_and_not_a_model_extension(
    tmp_path: Path,
) -> None:
    dest = tmp_path / "checkpoints" / "x.safetensors"
    temp = durable.partial_path(dest)
    assert temp.parent == dest.parent
    assert temp.name.startswith(".x.safetensors.")
    assert temp.name.endswith(PARTIAL_SUFFIX)
    assert durable.is_partial(temp.name)
    assert not durable.is_partial(dest.name)
    assert not durable.is_partial(f"x.safetensors{PARTIAL_SUFFIX}")  # not hidden: not ours
    assert temp != durable.partial_path(dest)


def test_write_atomic_replaces_the_file_whole_with_its_mode_and_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sub" / "conf.yaml"
    durable.write_atomic(path, "old\n")
    with path.open(encoding="utf-8") as reader:  # a reader of the old file keeps the old file
        durable.write_atomic(path, "new\n", mode=0o600)
        assert reader.read() == "old\n"
    assert path.read_text(encoding="utf-8") == "new\n"
    assert path.stat().st_mode & 0o777 == 0o600
    assert os.listdir(path.parent) == ["conf.yaml"]


def test_write_atomic_that_fails_keeps_the_old_file_and_removes_its_temp_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "report.json"
    durable.write_atomic(path, "whole\n")
    with pytest.raises(UnicodeEncodeError):
        durable.write_atomic(path, "half \udcff")  # a lone surrogate cannot be encoded
    assert path.read_text(encoding="utf-8") == "whole\n"
    assert os.listdir(tmp_path) == ["report.json"]


def test_a_document_in_more_pieces_than_one_writev_takes_is_written_whole(
    tmp_path: Path,
) -> None:
    pieces = [f"<{i}>".encode() for i in range(2 * durable.IOV_MAX + 5)]
    path = tmp_path / "doc.json"
    durable.write_pieces(path, pieces)
    assert path.read_bytes() == b"".join(pieces)
    assert path.stat().st_mode & 0o777 == 0o644
    assert os.listdir(tmp_path) == ["doc.json"]  # no temp file left


def test_write_pieces_that_fails_keeps_the_old_file_and_removes_its_temp_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "doc.json"
    durable.write_pieces(path, [b"whole", b"\n"])
    with pytest.raises(TypeError):
        durable.write_pieces(path, [b"half", "not bytes"])  # type: ignore[list-item]
    assert path.read_bytes() == b"whole\n"
    assert os.listdir(tmp_path) == ["doc.json"]


def test_sync_dir_syncs_a_folder_and_refuses_what_is_not_one(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x")
    durable.sync_dir(tmp_path)
    with pytest.raises(NotADirectoryError):
        durable.sync_dir(tmp_path / "file")
    with pytest.raises(FileNotFoundError):
        durable.sync_dir(tmp_path / "gone")
