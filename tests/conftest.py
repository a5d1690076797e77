"""Shared fixtures: a fake ComfyUI install running the stand-in (tests/comfyui_standin/,
driven through tests/harness/standin.py), and a small filesystem of its own (tmpfs) for copies
across filesystems."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comfyui_standin.safetensors_file import make_safetensors as _make_safetensors
from harness.standin import StandinProcess, make_comfyui_dir


@pytest.fixture
def comfyui_dir(tmp_path: Path) -> Path:
    """``tmp_path/ComfyUI``: the stand-in's ``main.py`` (+ modules) and empty ``models/<type>``
    for every folder ComfyUI creates (legacy ``unet``/``clip`` included)."""
    return make_comfyui_dir(tmp_path / "ComfyUI")


@pytest.fixture
def make_safetensors() -> Callable[..., Path]:
    """``make_safetensors(path, size_bytes, metadata=None, content=None) -> Path``."""
    return _make_safetensors


@pytest.fixture
def standin(comfyui_dir: Path) -> Iterator[Callable[..., StandinProcess]]:
    """Factory: ``standin(*args, env=..., port=...)`` starts the stand-in in ``comfyui_dir``
    (not yet ready: call ``wait_ready()``); every one started is killed at teardown."""
    started: list[StandinProcess] = []

    def start(*args: str, **kwargs: object) -> StandinProcess:
        proc = StandinProcess(comfyui_dir, *args, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A small real filesystem of its own (tmpfs, 4 MiB), unmounted afterwards."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True)
