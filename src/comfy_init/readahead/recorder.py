"""Record what ComfyUI's processes read from the volume until ComfyUI first answers.

Why an audit hook: it sees every file Python opens (imports included) and every folder the
import system lists, in the process that does it and when, with no privilege, on any
filesystem (FUSE included), for a few microseconds per file.  inotify on the trees would
need a watch per folder of a venv (thousands, a walk of the volume before ComfyUI starts
and a per-user limit shared by every container of the host) and cannot tell ComfyUI's opens
from the readahead's; fanotify needs CAP_SYS_ADMIN; sampling ``/proc/<pid>/fd`` misses the
``.pyc`` files, open for microseconds.  What the hook cannot see, libraries loaded by the
dynamic linker, is still mapped when ComfyUI answers: ``/proc/<pid>/maps`` of every process
that traced gives them.

ComfyUI loads the hook through ``PYTHONPATH`` (a folder holding only ``sitecustomize.py``,
which then runs any ``sitecustomize`` it hides).  Nothing else of its launch changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from comfy_init.readahead import trace

HOOK_DIR = Path(__file__).resolve().parent / "hook"
TRACE_SUFFIX = ".trace"


class Recording:
    """The trace folder of one start (``$RUN_DIR/readahead-trace``) and what was in it."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.folder = folder
        self.root = root

    def prepare(self) -> None:
        """An empty trace folder, before ComfyUI starts."""
        self.discard()
        self.folder.mkdir(parents=True, mode=0o700)

    def discard(self) -> None:
        """No trace folder (an earlier start's, when recording is turned off)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def environment(self, inherited: str | None) -> dict[str, str]:
        """What ComfyUI's environment gets: the hook first on ``PYTHONPATH``, and where to
        write.  ``inherited`` is the container's own ``PYTHONPATH``, kept after ours."""
        path = str(HOOK_DIR) if not inherited else f"{HOOK_DIR}{os.pathsep}{inherited}"
        return {
            "PYTHONPATH": path,
            "COMFY_INIT_TRACE_DIR": str(self.folder),
            "COMFY_INIT_TRACE_ROOT": str(self.root),
        }

    def stop(self) -> None:
        """Tell the hooks to stop (they look for the file at most every 0.25 s)."""
        (self.folder / "stop").touch()

    def collect(
        self, until: float, proc: Path = Path("/proc")
    ) -> tuple[list[trace.Seen], set[str]]:
        """What was read under the root before ``until`` (monotonic), and which of those
        files the processes opened themselves (the rest the dynamic linker mapped: processes
        that still run add the files they have mapped)."""
        events: list[tuple[float, trace.Kind, str]] = []
        mapped: list[str] = []
        for path in sorted(self.folder.glob(f"*{TRACE_SUFFIX}")):
            try:
                text = path.read_text(encoding="utf-8", errors="surrogateescape")
            except OSError:
                continue
            events.extend(trace.parse_lines(text.splitlines()))
            # A process that has exited: its traced opens are all there is.
            with contextlib.suppress(OSError, ValueError):
                mapped.extend(trace.mapped_files((proc / path.stem / "maps").read_text()))
        opened = {s.path for s in trace.observe(events, [], str(self.root), until)}
        return trace.observe(events, mapped, str(self.root), until), opened
