"""Find the files of the warmup config's lines on the volume, behind a symlink fence.

A line is looked up in the folders ComfyUI itself searches for its type, in ComfyUI's order
(``SearchPath.folders``); the first folder holding a name wins.  As in a shell, wildcards
skip hidden names; copies in progress (``*.comfy-init-partial``) and anything but regular
files never match.  The files of one wildcard line come in name order; a file matched again
by a later line keeps its first place.

Expansion touches the filesystem only below each pattern's literal prefix (a literal line is
a single ``stat``), and refuses any match, or any folder it would list, whose real path
leaves the fence (``SearchPath.fence``) through a symlink.  Each line is resolved on its own
(``resolve``): a line that is refused raises for itself alone."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from comfy_init.errors import ConfigError
from comfy_init.files.durable import PARTIAL_SUFFIX
from comfy_init.manifest.lines import Entry, has_wildcard
from comfy_init.settings import Settings


@dataclass(frozen=True)
class SearchPath:
    """Where config lines are looked up: ``$COMFYUI_PATH/models/<type>``, as ComfyUI does
    first, and nowhere a symlink below it leads outside ``$COMFYUI_PATH/models``."""

    models_path: Path

    @classmethod
    def of(cls, settings: Settings) -> SearchPath:
        return cls(models_path=settings.models_path)

    def folders(self, type_: str) -> list[Path]:
        """The folders searched for ``type_``, first match first (ComfyUI's order)."""
        return [self.models_path.absolute() / type_]

    @property
    def fence(self) -> Path:
        """The folder every match and every listed folder must really be inside."""
        return self.models_path.absolute()


@dataclass(frozen=True)
class ModelFile:
    type: str
    name: str  # posix path below the type folder it was found in, e.g. "SDXL/x.safetensors"
    source: Path  # absolute, in one of SearchPath.folders(type)
    size: int  # st_size of the source
    mtime_ns: int  # st_mtime_ns of the source
    entry: Entry  # first entry that matched (priority)


@dataclass(frozen=True)
class Expansion:
    files: list[ModelFile]  # config order = priority; each file once
    unmatched: list[Entry]  # lines that matched no regular file


class _Fence:
    """Whether a path below the models folder really stays inside it, symlinks resolved.

    A path that is not a symlink is inside when its folder is; folders are remembered, so a
    walk costs one ``lstat`` per name and a full resolve only for symlinks.
    """

    def __init__(self, models: str, entry: Entry) -> None:
        self.root = os.path.realpath(models)
        self.entry = entry
        self.known: dict[str, bool] = {models: True}

    def inside(self, path: str, lst: os.stat_result | None = None) -> bool:
        known = self.known.get(path)
        if known is not None:
            return known
        if lst is None:
            try:
                lst = os.lstat(path)
            except OSError:
                lst = None  # missing: it leads nowhere, its folder decides
        if lst is not None and stat.S_ISLNK(lst.st_mode):
            real = os.path.realpath(path)
            ok = real == self.root or real.startswith(self.root + os.sep)
        else:
            parent = os.path.dirname(path)
            ok = parent != path and self.inside(parent)  # "/" is reached only from outside
        self.known[path] = ok
        return ok

    def check(self, path: str, lst: os.stat_result | None = None) -> None:
        if not self.inside(path, lst):
            raise ConfigError(
                f"{self.entry.origin}: warmup config line {self.entry.text!r} reaches {path}, "
                f"which resolves to {os.path.realpath(path)} outside the models folder "
                f"{self.root} through a symlink (move the model into {self.root}, or remove "
                "the line)"
            )


def _name_matches(name: str, component: str) -> bool:
    # As in a shell glob, a wildcard does not match a hidden name unless the pattern is hidden.
    if name.startswith(".") and not component.startswith("."):
        return False
    return fnmatchcase(name, component)


def _walk(
    directory: str,
    parts: Sequence[str],
    fence: _Fence,
    seen: frozenset[tuple[int, int]] = frozenset(),
) -> Iterator[str]:
    """Paths below ``directory`` that match ``parts`` (components; ``**`` = any depth).

    Every folder is checked by ``fence`` before it is listed, so a walk never lists a folder
    outside the models tree.
    """
    if not parts:
        yield directory
        return
    head, rest = parts[0], parts[1:]
    if not has_wildcard(head):
        yield from _walk(os.path.join(directory, head), rest, fence, seen)
        return
    fence.check(directory)
    try:
        with os.scandir(directory) as it:
            children = list(it)
    except OSError:  # not a directory, gone, unreadable: nothing matches below it
        return
    if head != "**":
        for child in children:
            if _name_matches(child.name, head):
                yield from _walk(child.path, rest, fence, seen)
        return
    # Zero folders, then each subfolder (following symlinks, but never round a cycle).
    yield from _walk(directory, rest, fence, seen)
    try:
        here = os.stat(directory)
    except OSError:
        return
    seen = seen | {(here.st_dev, here.st_ino)}
    for child in children:
        if child.name.startswith(".") or not _is_dir(child):
            continue
        try:
            st = child.stat()
        except OSError:
            continue
        key = (st.st_dev, st.st_ino)
        if key not in seen:
            yield from _walk(child.path, parts, fence, seen | {key})


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()  # from the directory listing; a syscall only for symlinks
    except OSError:
        return False


def _candidates(entry: Entry, type_dir: str, fence: _Fence) -> Iterator[str]:
    parts = entry.pattern.split("/")
    if not any(has_wildcard(p) for p in parts):
        yield os.path.join(type_dir, entry.pattern)  # a literal line is a stat, never a walk
        return
    if parts[-1] == "**":  # a trailing ** means every file at any depth
        parts.append("*")
    literal = 0
    while not has_wildcard(parts[literal]):
        literal += 1
    yield from _walk(os.path.join(type_dir, *parts[:literal]), parts[literal:], fence)


def _model_file(path: str, fence: _Fence) -> os.stat_result | None:
    """The stat of ``path`` if it is a model: a regular file (or a link to one), not a
    partial copy, inside the models tree (ConfigError if a symlink leads out)."""
    if path.endswith(PARTIAL_SUFFIX):
        return None
    try:
        st = lst = os.lstat(path)
        if stat.S_ISLNK(lst.st_mode):
            st = os.stat(path)
    except OSError:  # missing, or a dangling link
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    fence.check(path, lst)
    return st


def resolve(entry: Entry, search: SearchPath) -> list[ModelFile]:
    """The files one line matches, in name order, each name found in the first folder of
    ``search.folders`` that holds it; ConfigError (for this line) if a symlink leads out."""
    fence = _Fence(str(search.fence), entry)
    found: dict[str, ModelFile] = {}
    for folder in search.folders(entry.type):
        type_dir = str(folder)
        for path in _candidates(entry, type_dir, fence):
            name = path[len(type_dir) + 1 :]
            if name in found:
                continue  # an earlier folder holds it: ComfyUI would load that one
            st = _model_file(path, fence)
            if st is not None:
                found[name] = ModelFile(
                    entry.type, name, Path(path), st.st_size, st.st_mtime_ns, entry
                )
    return [found[name] for name in sorted(found)]


def expand(entries: Sequence[Entry], search: SearchPath) -> Expansion:
    """Match each entry in ``search``; each file once, in priority order.  The ``@auto``
    line is not matched here: ``usage/auto.py`` expands it."""
    files: list[ModelFile] = []
    seen: set[tuple[str, str]] = set()
    unmatched: list[Entry] = []
    for entry in entries:
        if entry.auto:
            continue
        matches = resolve(entry, search)
        if not matches:
            unmatched.append(entry)
        for f in matches:
            if (f.type, f.name) not in seen:
                seen.add((f.type, f.name))
                files.append(f)
    return Expansion(files=files, unmatched=unmatched)
