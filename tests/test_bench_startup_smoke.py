"""The startup benchmark keeps working (no timing is asserted).

The smoke run is the real ``python -m bench.startup --smoke``: a tiny synthetic program
(a real venv, byte-compiled packages, an extension module linked to a library found only
through ``DT_NEEDED``, a ``ctypes`` library) on the slow volume, through ``comfy-init start``
as PID 1.  What is checked is behaviour: every row ran, the second start read the list
ahead and the program's opens found their files read, the library the dynamic linker
loaded is in the list (from ``/proc/<pid>/maps``), and the table names both targets.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("pyfuse3") is None,
        reason="needs the bench extra (pip install -e '.[bench]')",
    ),
    pytest.mark.skipif(
        os.geteuid() != 0 or not os.path.exists("/dev/fuse") or shutil.which("cc") is None,
        reason="needs root, /dev/fuse and a C compiler",
    ),
    pytest.mark.timeout(300),
]


def test_startup_smoke_runs_every_row_and_the_second_start_reads_ahead(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "python"),
            "-m",
            "bench.startup",
            "--smoke",
            f"--workdir={tmp_path / 'work'}",
            f"--out-dir={tmp_path / 'out'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads((tmp_path / "out" / "startup-smoke.json").read_text())
    rows = {r["row"]: r for r in doc["runs"]}
    assert len(rows) == 5
    assert all(r["ready_seconds"] > 0 for r in rows.values())
    first = rows["slow volume, first start (records)"]["readahead"]
    second = rows["slow volume, second start (reads ahead)"]["readahead"]
    assert first["listed_files"] == 0
    assert first["recorded_files"] > 15
    assert second["listed_files"] == first["recorded_files"]
    assert second["files"] == second["listed_files"]
    assert second["missing"] == 0
    assert second["opens_unlisted"] == 0
    assert second["opens_prefetched"] > 0
    listed = json.loads(
        (tmp_path / "work/smoke/backing/ComfyUI/.comfy-init/startup-files.json").read_text()
    )
    paths = [e[0] for e in listed["entries"]]
    assert any(p.endswith("heavy_libs/libheavy_native.so") for p in paths)  # DT_NEEDED only
    assert any(p.endswith("heavy_libs/libctypes0.so") for p in paths)
    assert any("__pycache__" in p for p in paths)
    table = (tmp_path / "out" / "startup-smoke.md").read_text()
    assert "second start vs local disk" in table
    assert "first start vs second start" in table
