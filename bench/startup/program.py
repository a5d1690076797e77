"""A synthetic heavy-import program in a ComfyUI-like install with its own venv.

``make(root, Size(...))`` writes ``root/ComfyUI``: ``main.py`` and ``venv/`` (a real venv
whose ``bin/python`` links to this interpreter, as a RunPod venv links to the image's).
Its ``site-packages`` holds what makes a real start slow from a network volume, without
torch:

- ``packages`` packages of ``modules`` modules each, byte-compiled (the volume is read-only
  to the program, so every ``.pyc`` is there already, as after ``pip install``);
- an extension module (``heavy_native``) linked against a large shared library found only
  through its ``DT_NEEDED`` entry (like ``torch._C`` and ``libtorch_cpu.so``), and more large
  libraries loaded with ``ctypes`` (like the CUDA libraries); each touches every page of its
  data when called, as a runtime's code and relocations are faulted in;
- a data file per package read with ``open()`` (like custom nodes' JSON).

``main.py`` imports all of it, then answers ``GET /system_stats`` on ``--port`` (any other
ComfyUI flag is accepted and ignored) until SIGINT or SIGTERM.
"""

from __future__ import annotations

import compileall
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

MiB = 1024 * 1024


@dataclass(frozen=True)
class Size:
    packages: int = 30
    modules: int = 50  # per package
    functions: int = 40  # per module: the size of its code
    native_mb: int = 240  # the library behind the extension module (DT_NEEDED)
    ctypes_mb: tuple[int, ...] = (160, 80, 40)  # libraries loaded with ctypes
    data_kb: int = 64  # one data file per package

    @property
    def module_count(self) -> int:
        return self.packages * (self.modules + 1)


SMOKE = Size(packages=3, modules=5, functions=4, native_mb=2, ctypes_mb=(1,), data_kb=4)

LIB_C = """\
extern const unsigned char _binary_blob_bin_start[], _binary_blob_bin_end[];
unsigned long heavy_touch(void) {
    unsigned long sum = 0;
    for (const volatile unsigned char *p = _binary_blob_bin_start; p < _binary_blob_bin_end;
         p += 4096)
        sum += *p;
    return sum;
}
"""

EXT_C = """\
#include <Python.h>
extern unsigned long heavy_touch(void);
static PyObject *touch(PyObject *self, PyObject *args) {
    return PyLong_FromUnsignedLong(heavy_touch());
}
static PyMethodDef methods[] = {{"touch", touch, METH_NOARGS, ""}, {0}};
static struct PyModuleDef def = {PyModuleDef_HEAD_INIT, "heavy_native", 0, -1, methods};
PyMODINIT_FUNC PyInit_heavy_native(void) { return PyModule_Create(&def); }
"""

MAIN = '''\
"""Synthetic heavy start: imports, native libraries, data files; then serves /system_stats."""
import argparse
import ctypes
import importlib
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STARTED = time.monotonic()
parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8188)
args, _ = parser.parse_known_args()

import heavy_native  # noqa: E402  (DT_NEEDED: libheavy_native.so)

heavy_native.touch()
LIBS = os.path.join(os.path.dirname(heavy_native.__file__), "heavy_libs")
for name in sorted(os.listdir(LIBS)):
    if name.startswith("libctypes"):
        ctypes.CDLL(os.path.join(LIBS, name)).heavy_touch()
for i in range(PACKAGES):
    package = importlib.import_module(f"hpkg{i:03d}")
    with open(os.path.join(os.path.dirname(package.__file__), "data.json"), "rb") as fh:
        fh.read()
IMPORTED = time.monotonic() - STARTED


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"system": {"argv": sys.argv, "imported_seconds": IMPORTED}}).encode()
        self.send_response(200 if self.path == "/system_stats" else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print(f"imported in {IMPORTED:.2f} s; serving on {args.port}", flush=True)
try:
    ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
except KeyboardInterrupt:
    print("Stopped server", flush=True)
'''


def _module_source(package: int, module: int, functions: int) -> str:
    body = [f'"""Module {module} of package {package}."""', "import os", "import re", ""]
    for f in range(functions):
        body.append(
            textwrap.dedent(f"""\
            def f{f}(x, y=None):
                \"\"\"Function {f}: some code to compile and unmarshal.\"\"\"
                total = {f}
                for i in range(x):
                    total += (i * {f + 1}) % 7 + len(os.sep) + len(re.escape("a.b"))
                return {{"value": total, "y": y, "name": "p{package}m{module}f{f}"}}
            """)
        )
    body.append(f"class C{module}:\n    value = {module}\n")
    return "\n".join(body)


def _site_packages(venv_dir: Path) -> Path:
    return venv_dir / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"


def _blob_lib(work: Path, out: Path, mb: int, seed: int) -> None:
    """A shared library carrying ``mb`` MiB of data and ``heavy_touch`` to fault it all in."""
    block = os.urandom(MiB)  # incompressible, different per library
    blob = work / "blob.bin"
    with open(blob, "wb") as fh:
        for i in range(mb):
            fh.write(block[i % 7 :] + block[: i % 7] if i else block)
            fh.write(seed.to_bytes(8, "little"))
    (work / "lib.c").write_text(LIB_C, encoding="utf-8")
    subprocess.run(["ld", "-r", "-b", "binary", "-o", "blob.o", "blob.bin"], cwd=work, check=True)
    subprocess.run(
        ["cc", "-shared", "-fPIC", "-O1", "-o", str(out), "lib.c", "blob.o", "-Wl,-z,noexecstack"],
        cwd=work,
        check=True,
    )
    blob.unlink()


def make(root: Path, size: Size) -> Path:
    """Write the install at ``root/ComfyUI`` (replacing any there); return that path."""
    comfyui = root / "ComfyUI"
    if comfyui.exists():
        shutil.rmtree(comfyui)
    comfyui.mkdir(parents=True)
    venv.EnvBuilder(with_pip=False, symlinks=True).create(comfyui / "venv")
    site = _site_packages(comfyui / "venv")
    for p in range(size.packages):
        pkg = site / f"hpkg{p:03d}"
        pkg.mkdir()
        imports = "\n".join(f"from . import m{m:03d}" for m in range(size.modules))
        (pkg / "__init__.py").write_text(imports + "\n", encoding="utf-8")
        for m in range(size.modules):
            (pkg / f"m{m:03d}.py").write_text(
                _module_source(p, m, size.functions), encoding="utf-8"
            )
        (pkg / "data.json").write_bytes(b"[" + b"0," * (size.data_kb * 512) + b"0]")
    libs = site / "heavy_libs"
    libs.mkdir()
    work = root / ".build"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    _blob_lib(work, libs / "libheavy_native.so", size.native_mb, 0)
    for i, mb in enumerate(size.ctypes_mb):
        _blob_lib(work, libs / f"libctypes{i}.so", mb, i + 1)
    (work / "ext.c").write_text(EXT_C, encoding="utf-8")
    subprocess.run(
        [
            "cc",
            "-shared",
            "-fPIC",
            "-O1",
            f"-I{sysconfig.get_paths()['include']}",
            "-o",
            str(site / f"heavy_native{EXTENSION_SUFFIXES[0]}"),
            "ext.c",
            f"-L{libs}",
            "-lheavy_native",
            "-Wl,-rpath,$ORIGIN/heavy_libs",
        ],
        cwd=work,
        check=True,
    )
    shutil.rmtree(work)
    (comfyui / "main.py").write_text(
        MAIN.replace("range(PACKAGES)", f"range({size.packages})"), encoding="utf-8"
    )
    compileall.compile_dir(site, quiet=2, workers=1)
    (comfyui / "models" / "checkpoints").mkdir(parents=True)
    return comfyui
