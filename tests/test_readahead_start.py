"""The readahead through ``comfy-init start`` as PID 1, with ComfyUI on the slow-volume stand-in.

The program standing in for ComfyUI lives on the FUSE volume with its package tree and data
files; before it opens each file it notes whether the file's pages are already in the page
cache.  It waits for the readahead to finish first (as a real ComfyUI is busy for seconds
before its first import of a custom node), so "resident before opened" is what the
readahead did, not a race.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comfy_init.readahead import report, startlist
from harness import boots as h
from harness.pid1 import Pid1

if str(h.REPO) not in sys.path:  # ``bench`` lives beside ``src``, not in the installed package
    sys.path.insert(0, str(h.REPO))

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or not os.path.exists("/dev/fuse") or not shutil.which("fusermount3"),
        reason="needs root, /dev/fuse and fusermount3",
    ),
    pytest.mark.timeout(180),
]

MODULES = 12
PROGRAM = """\
import json, os, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
from comfy_init.residency import resident

here = os.path.dirname(os.path.abspath(__file__))
lib = os.path.join(os.path.dirname(here), "venv", "lib")
report = os.path.join(os.environ["RUN_DIR"], "readahead-report.json")
deadline = time.monotonic() + 30
while time.monotonic() < deadline:  # busy for a while, as ComfyUI is before its imports
    try:
        with open(report) as fh:
            if json.load(fh)["state"] != "reading":
                break
    except (OSError, ValueError):
        pass
    time.sleep(0.05)
seen = {}
def note(path):
    r = resident(path)
    seen[os.path.relpath(path, os.path.dirname(here))] = [r[0], r[1]] if r else None
sys.path.insert(0, lib)
for name in sorted(os.listdir(os.path.join(lib, "pkg", "__pycache__"))):
    note(os.path.join(lib, "pkg", "__pycache__", name))
import pkg
for name in sorted(os.listdir(os.path.join(lib, "data"))):
    note(os.path.join(lib, "data", name))
    with open(os.path.join(lib, "data", name), "rb") as fh:
        fh.read()
with open(os.environ["PROGRAM_RECORD"], "a") as out:
    out.write(json.dumps(seen) + "\\n")

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")
    def log_message(self, *a):
        pass

port = int(sys.argv[sys.argv.index("--port") + 1])
try:
    HTTPServer(("127.0.0.1", port), Handler).serve_forever()
except KeyboardInterrupt:
    pass
"""


def make_volume(backing: Path) -> None:
    comfyui = backing / "ComfyUI"
    (comfyui / "models" / "checkpoints").mkdir(parents=True)
    (comfyui / startlist.FOLDER).mkdir()
    (comfyui / "main.py").write_text(PROGRAM)
    pkg = backing / "venv" / "lib" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("".join(f"from . import m{i:02d}\n" for i in range(MODULES)))
    for i in range(MODULES):
        (pkg / f"m{i:02d}.py").write_text(f"VALUE = {i}\n" + "X = 'x' * 1000\n" * 50)
    compileall.compile_dir(pkg, quiet=2)
    data = backing / "venv" / "lib" / "data"
    data.mkdir()
    for name, size in (("big.bin", 3_000_000), ("a.json", 40_000), ("gone.json", 5_000)):
        (data / name).write_bytes(os.urandom(size))


@pytest.fixture
def volume(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(backing folder, the same seen through the slow volume), with a writable list folder."""
    from bench.slowfs import Shape, SlowVolume

    backing = tmp_path / "backing"
    make_volume(backing)
    mount = tmp_path / "mnt"
    with SlowVolume(backing, mount, Shape(latency=0.001)):
        folder = mount / "ComfyUI" / startlist.FOLDER
        subprocess.run(
            ["mount", "--bind", str(backing / "ComfyUI" / startlist.FOLDER), str(folder)],
            check=True,
        )
        try:
            yield backing, mount
        finally:
            subprocess.run(["umount", str(folder)], check=False)


@pytest.fixture
def start(tmp_path: Path, volume: tuple[Path, Path]) -> Iterator[Callable[..., Pid1]]:
    yield from h.runner(tmp_path, volume[1] / "ComfyUI")


def cold(mount: Path) -> None:
    """Empty the volume's page cache (the backing files stay warm: only FUSE is timed)."""
    for path in mount.rglob("*"):
        if path.is_file() and startlist.FOLDER not in path.parts:
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def boot(
    start: Callable[..., Pid1], tmp_path: Path, readahead: str
) -> tuple[Pid1, dict[str, list[int] | None]]:
    record = tmp_path / "program.jsonl"
    record.unlink(missing_ok=True)
    run = start("--skip-warmup", env={"READAHEAD": readahead, "PROGRAM_RECORD": str(record)})
    run.wait_event("comfyui_ready", timeout=60)
    if readahead == "1":
        run.wait_event("readahead_recorded", timeout=60)
    seen = json.loads(h.wait_for(record.read_text, 10, "the program's record").splitlines()[-1])
    run.signal(signal.SIGTERM)
    assert run.wait_exit(timeout=20) == 0
    return run, seen


def test_first_start_records_the_second_reads_ahead_changes_followed_off_reads_nothing(
    tmp_path: Path, volume: tuple[Path, Path], start: Callable[..., Pid1]
) -> None:
    backing, mount = volume
    listed_at = startlist.location(backing / "ComfyUI")
    run_dir = tmp_path / "run"

    # 1. First start: nothing to read ahead; the list is written from what was read.
    cold(mount)
    _first, seen = boot(start, tmp_path, "1")
    entries = {e.path: e for e in startlist.load(listed_at)}
    for rel in seen:
        assert rel in entries, f"{rel} read by the program but not listed"
    assert "ComfyUI/main.py" in entries
    assert "venv/lib/pkg" in entries
    assert entries["venv/lib/pkg"].kind == "dir"
    assert not any(resident and resident[0] for resident in seen.values())  # cold volume
    rep = report.read(run_dir / "readahead-report.json")
    assert rep.listed_files == 0
    assert rep.files == 0
    assert rep.recorded_files == len([e for e in entries.values() if e.kind == "file"])

    # Between the starts: one file changes (grows), one disappears.
    data = backing / "venv" / "lib" / "data"
    (data / "a.json").write_bytes(os.urandom(90_000))
    (data / "gone.json").unlink()
    # The volume's kernel caches names and attributes for 1 s (as MooseFS's client does):
    # another pod's change is seen once they expire.
    time.sleep(1.2)

    # 2. Second start: every listed file is resident before the program opens it.
    cold(mount)
    second, seen = boot(start, tmp_path, "1")
    assert seen, "the program noted no file"
    for rel, resident in seen.items():
        assert resident is not None, rel
        assert resident[0] == resident[1] > 0, (rel, resident)
    assert seen["venv/lib/data/a.json"] == [90_000, 90_000]  # the changed file, read whole
    rep = report.read(run_dir / "readahead-report.json")
    assert rep.missing == 1
    assert rep.changed == 1
    assert rep.files == rep.listed_files - 1
    assert rep.opens_prefetched >= len(seen)
    assert rep.opens_unlisted == 0
    refreshed = {e.path: e for e in startlist.load(listed_at)}
    assert "venv/lib/data/gone.json" not in refreshed
    assert refreshed["venv/lib/data/a.json"].size == 90_000
    assert second.find_events("readahead_done")[0]["missing"] == 1

    # 3. Turned off: no hook, nothing read ahead, the list left as it is.
    before = listed_at.stat().st_mtime_ns
    cold(mount)
    third, seen = boot(start, tmp_path, "0")
    assert all(r is not None and r[0] == 0 for r in seen.values()), seen
    assert report.read(run_dir / "readahead-report.json").state == "off"
    assert not (run_dir / "readahead-trace").exists()
    assert listed_at.stat().st_mtime_ns == before
    assert not third.find_events("readahead_started")
