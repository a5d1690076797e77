"""The recording hook, loaded by a real interpreter through PYTHONPATH as ComfyUI loads it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from comfy_init.readahead import trace
from comfy_init.readahead.recorder import HOOK_DIR, Recording


def run(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def traced_lines(folder: Path) -> list[str]:
    lines: list[str] = []
    for f in sorted(folder.glob("*.trace")):
        lines.extend(f.read_text().splitlines())
    return lines


def traced(folder: Path) -> list[tuple[float, trace.Kind, str]]:
    return trace.parse_lines(traced_lines(folder))


def test_reads_and_listings_under_the_root_are_traced_and_writes_are_not(
    tmp_path: Path,
) -> None:
    root = tmp_path / "volume"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub.py").write_text("")
    (root / "data.txt").write_text("x")
    rec = Recording(tmp_path / "trace", root)
    rec.prepare()
    code = f"""
import ctypes, os, sys, _json
sys.path.insert(0, {str(root)!r})
import pkg.sub
open({str(root / "data.txt")!r}).read()
open({str(root / "written.txt")!r}, "w").write("w")
os.close(os.open({str(root / "data.txt")!r}, os.O_RDWR))
open("/etc/hostname").read()
"""
    done = run(code, rec.environment(None), tmp_path)
    assert done.returncode == 0, done.stderr
    events = traced(tmp_path / "trace")
    kinds = {(kind, path) for _, kind, path in events}
    assert ("file", str(root / "pkg" / "__init__.py")) in kinds
    assert ("file", str(root / "data.txt")) in kinds
    assert ("dir", str(root / "pkg")) in kinds  # the import system listed the package
    assert all(path.startswith(str(root) + "/") for _, _, path in events)
    assert not any(path.endswith("written.txt") for _, _, path in events)
    assert len([p for _, k, p in events if p.endswith("data.txt")]) == 1  # once per process
    assert [t for t, _, _ in events] == sorted(t for t, _, _ in events)


def test_extension_modules_and_ctypes_libraries_are_traced(tmp_path: Path) -> None:
    rec = Recording(tmp_path / "trace", Path("/"))
    rec.prepare()
    code = "import ctypes, _json; ctypes.CDLL(_json.__file__)"
    done = run(code, rec.environment(None), tmp_path)
    assert done.returncode == 0, done.stderr
    import _json

    raw = [line.split("\t", 1)[1] for line in traced_lines(tmp_path / "trace")]
    assert f"x\t{_json.__file__}" in raw  # imported as an extension module
    assert f"l\t{_json.__file__}" in raw  # loaded by ctypes
    observed = trace.observe(traced(tmp_path / "trace"), [], "/", until=float("inf"))
    assert [s.path for s in observed].count(_json.__file__.lstrip("/")) == 1


def test_reads_from_many_threads_at_once_are_all_traced(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    root.mkdir()
    for n in range(400):
        (root / f"f{n}.txt").write_text("x")
    rec = Recording(tmp_path / "trace", root)
    rec.prepare()
    code = f"""
import threading
def read(k):
    for n in range(k, 400, 8):
        open({str(root)!r} + f"/f{{n}}.txt").read()
threads = [threading.Thread(target=read, args=(k,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
"""
    done = run(code, rec.environment(None), tmp_path)
    assert done.returncode == 0, done.stderr
    paths = {p for _, _, p in traced(tmp_path / "trace")}
    assert paths == {str(root / f"f{n}.txt") for n in range(400)}


def test_nothing_is_traced_once_the_stop_file_is_there(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    root.mkdir()
    (root / "before.txt").write_text("b")
    (root / "after.txt").write_text("a")
    rec = Recording(tmp_path / "trace", root)
    rec.prepare()
    code = f"""
import time
open({str(root / "before.txt")!r}).read()
open({str(tmp_path / "trace" / "stop")!r}, "w").close()
time.sleep(0.4)
open({str(root / "after.txt")!r}).read()
"""
    done = run(code, rec.environment(None), tmp_path)
    assert done.returncode == 0, done.stderr
    paths = [p for _, _, p in traced(tmp_path / "trace")]
    assert paths == [str(root / "before.txt")]


def test_a_forked_child_traces_into_its_own_file(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    root.mkdir()
    (root / "a.txt").write_text("a")
    rec = Recording(tmp_path / "trace", root)
    rec.prepare()
    code = f"""
import os
open({str(root / "a.txt")!r}).read()
pid = os.fork()
if pid == 0:
    open({str(root / "a.txt")!r}).read()
    os._exit(0)
os.waitpid(pid, 0)
"""
    done = run(code, rec.environment(None), tmp_path)
    assert done.returncode == 0, done.stderr
    files = sorted((tmp_path / "trace").glob("*.trace"))
    assert len(files) == 2
    assert all(str(root / "a.txt") in f.read_text() for f in files)


def test_the_hidden_sitecustomize_still_runs_and_its_errors_do_not_stop_python(
    tmp_path: Path,
) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "sitecustomize.py").write_text("import os\nos.environ['THEIRS_RAN'] = 'yes'\n")
    rec = Recording(tmp_path / "trace", tmp_path)
    rec.prepare()
    env = rec.environment(str(theirs))
    assert env["PYTHONPATH"] == f"{HOOK_DIR}{os.pathsep}{theirs}"
    done = run("import os, sys; print(os.environ.get('THEIRS_RAN'))", env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "yes"

    (theirs / "sitecustomize.py").write_text("raise RuntimeError('broken site')\n")
    done = run("print('still runs')", env, tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == "still runs"
    assert "Error in sitecustomize" in done.stderr
    assert "broken site" in done.stderr


def test_an_unwritable_trace_folder_changes_nothing_for_the_program(tmp_path: Path) -> None:
    root = tmp_path / "volume"
    root.mkdir()
    (root / "a.txt").write_text("a")
    env = {
        "PYTHONPATH": str(HOOK_DIR),
        "COMFY_INIT_TRACE_DIR": str(tmp_path / "missing" / "folder"),
        "COMFY_INIT_TRACE_ROOT": str(root),
    }
    done = run(f"print(open({str(root / 'a.txt')!r}).read())", env, tmp_path)
    assert done.returncode == 0
    assert done.stdout.strip() == "a"
    assert done.stderr == ""


def test_without_a_trace_folder_the_hook_records_nothing_anywhere(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    code = "import sitecustomize; print(sitecustomize.__file__); open('a.txt').read()"
    done = run(
        code, {"PYTHONPATH": str(HOOK_DIR), "COMFY_INIT_TRACE_ROOT": str(tmp_path)}, tmp_path
    )
    assert done.returncode == 0
    assert done.stderr == ""
    assert done.stdout.strip() == str(HOOK_DIR / "sitecustomize.py")  # it was loaded
    assert [p.name for p in tmp_path.rglob("*")] == ["a.txt"]


@pytest.mark.timeout(120)
def test_the_built_wheel_ships_the_hook(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", tmp_path, repo],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = zf.read("comfy_init/readahead/hook/sitecustomize.py")
    assert shipped == (HOOK_DIR / "sitecustomize.py").read_bytes()
