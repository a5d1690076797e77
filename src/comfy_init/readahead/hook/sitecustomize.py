"""Record the files this interpreter reads from the volume while ComfyUI starts.

Loaded by ComfyUI's own interpreter (any Python >= 3.8; it cannot import comfy_init)
because comfy-init puts this folder on ``PYTHONPATH``.  With ``COMFY_INIT_TRACE_DIR`` set,
an audit hook appends one line per first sight of a path under ``COMFY_INIT_TRACE_ROOT``
to ``<dir>/<pid>.trace``: ``<monotonic seconds>\\t<kind>\\t<path>``, kind ``f`` for a file
opened for reading (imports' ``.pyc`` and sources, ``open()``), ``x`` for an extension
module, ``l`` for a ``ctypes`` library, ``d`` for a folder listed (the import system lists
each package folder).  Libraries loaded through ``DT_NEEDED`` raise no event: comfy-init
reads them from ``/proc/<pid>/maps``.  Once ``<dir>/stop`` exists (looked for at most
every 0.25 s) the hook does nothing more.  It never raises.

Then the next ``sitecustomize`` on ``sys.path`` (the one this file hides) runs as usual.
"""

from __future__ import annotations

import _thread
import os
import sys
import time
from typing import Any

_STOP_CHECK_SECONDS = 0.25
_MAX_LINES = 200000
_WRITING = ("w", "a", "+", "x")
_EVENTS = {"open": "f", "import": "x", "os.listdir": "d", "os.scandir": "d", "ctypes.dlopen": "l"}


def _path_of(event: str, args: tuple[Any, ...]) -> Any:
    """The path an event reads, or None (writes, imports of pure-Python modules...)."""
    if event == "open":
        path, mode, flags = args
        if mode is not None and any(c in mode for c in _WRITING):
            return None
        if mode is None and flags is not None and flags & 3 != os.O_RDONLY:
            return None
        return path
    if event == "import":
        return args[1]  # the file of an extension module; None for the others
    return args[0]


class _Recorder:
    def __init__(self, folder: str, root: str) -> None:
        self.folder = folder
        self.root = root.rstrip("/") + "/"
        self.seen: set[tuple[str, str]] = set()
        self.lines = 0
        self.active = True
        self.busy: set[int] = set()  # threads inside the hook (its own open() is an event)
        self.next_check = 0.0
        self.stop_file = os.path.join(folder, "stop")

    def _write(self, kind: str, path: str) -> None:
        now = time.monotonic()
        if now >= self.next_check:
            self.next_check = now + _STOP_CHECK_SECONDS
            if os.path.exists(self.stop_file) or self.lines >= _MAX_LINES:
                self.active = False
                return
        # Opened and closed for each line: ComfyUI's own descriptors stay exactly its own.
        name = os.path.join(self.folder, f"{os.getpid()}.trace")
        fd = os.open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, f"{now:.6f}\t{kind}\t{path}\n".encode("utf-8", "surrogateescape"))
        finally:
            os.close(fd)
        self.lines += 1

    def forked(self) -> None:
        """In a forked child: its own trace file (named by pid), its own first sights; the
        threads that were inside the hook are not in the child."""
        self.seen = set()
        self.busy = set()

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        kind = _EVENTS.get(event)
        if kind is None or not self.active:
            return
        thread = _thread.get_ident()
        if thread in self.busy:
            return
        self.busy.add(thread)
        try:
            path = _path_of(event, args)
            if isinstance(path, bytes):
                path = os.fsdecode(path)
            if not isinstance(path, str):
                return
            if not path.startswith("/"):
                path = os.path.join(os.getcwd(), path)
            if path.startswith(self.root) and (kind, path) not in self.seen:
                self.seen.add((kind, path))
                self._write(kind, path)
        except Exception:  # a recorder must never change what the program does
            self.active = False
        finally:
            self.busy.discard(thread)


def _install() -> None:
    folder = os.environ.get("COMFY_INIT_TRACE_DIR")
    root = os.environ.get("COMFY_INIT_TRACE_ROOT")
    if folder and root and hasattr(sys, "addaudithook"):
        recorder = _Recorder(folder, root)
        sys.addaudithook(recorder)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=recorder.forked)


def _chain() -> None:
    """Run the ``sitecustomize`` this one hides, as ``site`` would have."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    try:
        import importlib.machinery
        import importlib.util

        spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)
    except Exception as exc:
        name = type(exc).__name__
        sys.stderr.write(
            f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{name}: {exc}\n"
        )


_install()
_chain()
