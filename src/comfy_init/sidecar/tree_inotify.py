"""Recursive inotify watches on the cache tree, the volume's models tree and the type folders
of the user's ``extra_model_paths.yaml`` (the volume too: ComfyUI loads from them).

inotify watches one directory at a time, so every directory below each root is watched,
added in the background (the volume's tree can be large and slow to walk), and directories
created later are watched as they appear (IN_CREATE/IN_MOVED_TO with IN_ISDIR); the model
files already inside such a new directory are reported as ``found``.  Hidden directories
are not watched (ComfyUI finds no models there; it saves inotify watches).  A root that is
missing (the cache before the first warmup) or removed is looked for again every few
seconds.  Otherwise the thread sleeps until the kernel has events for it (or ``stop()``
wakes it through a pipe): no timer.

Only model files are reported (``model_files.is_model_name``), as ``TreeEvent``s with kind
``open``, ``create``, ``close_write``, ``moved_to`` or ``found``; a kernel queue overflow is
reported once as kind ``overflow``.  Events inside a root's own top level (no model type)
are dropped.  A tree's first level below its root is the model type; a type folder's type
is the YAML key that names it.  A folder reached from two roots is watched once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inotify_simple import INotify, flags

from comfy_init import logs
from comfy_init.sidecar import model_files
from comfy_init.wakeup import WakePipe

log = logs.get_logger("metrics.watcher")

MASK = (
    flags.OPEN
    | flags.CREATE
    | flags.MOVED_TO
    | flags.CLOSE_WRITE
    | flags.DELETE_SELF
    | flags.MOVE_SELF
    | flags.ONLYDIR
)
ROOT_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class TreeEvent:
    kind: str  # open, create, close_write, moved_to, found, overflow
    location: str  # cache, volume ("" for overflow)
    path: Path
    type: str = ""
    name: str = ""


Handler = Callable[[TreeEvent], None]


@dataclass(frozen=True)
class _Root:
    location: str
    path: Path
    type: str = ""  # "": a tree of <type>/ folders; else a folder of this one type


class TreeInotify:
    """Watches ``roots`` (location → a tree of type folders) and ``type_folders``
    ((location, type, folder), each a folder of one type), and calls ``handler`` for each
    event, from one background thread.  ``handler`` must not raise (exceptions are logged)."""

    def __init__(
        self,
        roots: dict[str, Path],
        handler: Handler,
        type_folders: Sequence[tuple[str, str, Path]] = (),
    ) -> None:
        self.roots = [_Root(loc, path) for loc, path in roots.items()]
        self.roots += [_Root(loc, path, type_) for loc, type_, path in type_folders]
        self.locations = list(dict.fromkeys(r.location for r in self.roots))
        self.handler = handler
        self.inotify = INotify()
        self._dirs: dict[int, tuple[_Root, Path]] = {}  # wd → (its root, directory)
        self._root_wds: dict[_Root, int] = {}
        self._stop = threading.Event()
        self._wake = WakePipe()  # poked by stop()
        self._thread = threading.Thread(target=self._run, name="inotify", daemon=True)
        self._limit_logged = False
        self.ready = threading.Event()  # set once every existing root is watched
        self.overflows = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._wake.poke()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if not self._thread.is_alive():  # else the thread still reads them; they die with us
            self.inotify.close()
            self._wake.close()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def watch_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.locations, 0)
        for root, _ in list(self._dirs.values()):
            counts[root.location] += 1
        return counts

    # --- thread
    def _run(self) -> None:
        try:
            self._watch_roots()
            self.ready.set()
            next_roots = time.monotonic() + ROOT_RETRY_SECONDS
            while not self._stop.is_set():
                timeout = None  # every root watched: sleep until there are events
                if self._missing_root():
                    timeout = next_roots - time.monotonic()
                self._wake.wait(timeout, self.inotify.fileno())
                if self._stop.is_set():
                    return
                for event in self.inotify.read(timeout=0):
                    self._dispatch(event.wd, event.mask, event.name)
                if time.monotonic() >= next_roots:
                    self._watch_roots()
                    next_roots = time.monotonic() + ROOT_RETRY_SECONDS
        except Exception as exc:  # a dead watcher must say why in the log
            if not self._stop.is_set():
                log.error("inotify_watcher_failed", error=repr(exc))
        finally:
            self.ready.set()

    def _missing_root(self) -> bool:
        return any(self._root_wds.get(root) not in self._dirs for root in self.roots)

    def _watch_roots(self) -> None:
        for root in self.roots:
            wd = self._root_wds.get(root)
            if wd is not None and wd in self._dirs:
                continue
            if root.path.is_dir():
                self._watch_tree(root, root.path, report_files=False)
                log.info("inotify_watching", location=root.location, root=str(root.path))

    def _watch_tree(self, root: _Root, top: Path, *, report_files: bool) -> None:
        stack = [top]
        while stack and not self._stop.is_set():
            folder = stack.pop()
            wd = self._add(root, folder)
            if wd is None:
                continue
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    continue
                if is_dir:
                    if not entry.name.startswith("."):  # no models below hidden folders
                        stack.append(Path(entry.path))
                elif report_files and model_files.is_model_name(entry.name):
                    self._emit("found", root, Path(entry.path))

    def _add(self, root: _Root, folder: Path) -> int | None:
        try:
            wd: int = self.inotify.add_watch(folder, MASK)
        except OSError as exc:
            if exc.errno == 28 and not self._limit_logged:  # ENOSPC: max_user_watches
                self._limit_logged = True
                log.warning(
                    "inotify_watch_limit",
                    folder=str(folder),
                    error=str(exc),
                    hint="raise fs.inotify.max_user_watches; opens below are not counted",
                )
            return None
        if folder == root.path:
            self._root_wds[root] = wd
        if wd in self._dirs:  # already watched: reached again through a symlink, a loop, or
            return None  # from another root (a YAML folder inside models/)
        self._dirs[wd] = (root, folder)
        return wd

    def _dispatch(self, wd: int, mask: int, name: str) -> None:
        if mask & flags.Q_OVERFLOW:
            self.overflows += 1
            self._emit("overflow", None, Path())
            return
        if mask & flags.IGNORED:
            self._dirs.pop(wd, None)
            return
        where = self._dirs.get(wd)
        if where is None or not name:
            return
        root, folder = where
        path = folder / name
        if mask & flags.ISDIR:
            if mask & (flags.CREATE | flags.MOVED_TO) and not name.startswith("."):
                self._watch_tree(root, path, report_files=True)
            return
        if not model_files.is_model_name(name):
            return
        for bit, kind in (
            (flags.CREATE, "create"),
            (flags.OPEN, "open"),
            (flags.MOVED_TO, "moved_to"),
            (flags.CLOSE_WRITE, "close_write"),
        ):
            if mask & bit:
                self._emit(kind, root, path)

    def _emit(self, kind: str, root: _Root | None, path: Path) -> None:
        located = None
        if root is not None:
            if root.type:
                name = model_files.name_below(root.path, path)
                located = None if name is None else (root.type, name)
            else:
                located = model_files.type_and_name(root.path, path)
            if located is None:
                return
        type_, name = located if located else ("", "")
        location = root.location if root is not None else ""
        try:
            self.handler(TreeEvent(kind, location, path, type_, name))
        except Exception as exc:  # one bad event must not stop the watcher
            log.error("inotify_handler_failed", kind=kind, path=str(path), error=repr(exc))
