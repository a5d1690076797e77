"""Find the files of the warmup config's lines on the volume, behind a symlink fence.

A line is looked up in the folders ComfyUI itself searches for its type, in ComfyUI's order
(``SearchPath.folders``); the first folder holding a name wins.  As in a shell, wildcards
skip hidden names; copies in progress (``*.comfy-init-partial``) and anything but regular
files never match.  The files of one wildcard line come in name order; a file matched again
by a later line (or by a line of the same ComfyUI folder under its legacy name) keeps its
first place.

Expansion touches the filesystem only below each pattern's literal prefix (a literal line is
a single ``stat``).  A match, or a folder it would list, whose real path leaves the fence
(``SearchPath.fence``) through a symlink is never read or listed: it is skipped and reported
(``Skip``), as is a symlink loop, and the line's other files are kept.  ``resolve`` is the
strict form for one line: its files, or ConfigError naming every link it refused."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from comfy_init.errors import ConfigError
from comfy_init.files.durable import PARTIAL_SUFFIX
from comfy_init.manifest.lines import Entry, Skip, has_wildcard
from comfy_init.manifest.search_path import SearchPath, comfyui_folder

__all__ = ["Expansion", "ModelFile", "SearchPath", "expand", "resolve", "resolve_lenient"]


@dataclass(frozen=True)
class ModelFile:
    type: str
    name: str  # posix path below the type folder it was found in, e.g. "SDXL/x.safetensors"
    source: Path  # absolute, in one of SearchPath.folders(type)
    size: int  # st_size of the source
    mtime_ns: int  # st_mtime_ns of the source
    entry: Entry  # first entry that matched (priority)

    @property
    def folder(self) -> Path:
        """The search folder the file was found in."""
        return Path(str(self.source)[: -len(self.name) - 1])


@dataclass(frozen=True)
class Expansion:
    files: list[ModelFile]  # config order = priority; each file once
    unmatched: list[Entry]  # lines that matched no regular file (nor a skipped one)
    skipped: list[Skip] = field(default_factory=list)  # links refused, per line, config order


class _Fence:
    """Whether a path in a search folder really stays inside the fence, symlinks resolved.

    A path that is not a symlink is inside when its folder is; folders are remembered, so a
    walk costs one ``lstat`` per name and a full resolve only for symlinks (and once for
    each search folder, where every walk starts).  What it refuses is kept in ``refused``.
    """

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = tuple(dict.fromkeys(os.path.realpath(r) for r in roots))
        self.known: dict[str, bool] = {}
        self.refused: dict[str, str] = {}  # path -> where it really leads
        self.loops: list[str] = []

    def _really_inside(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in self.roots)

    def seed(self, folder: str) -> None:
        """``folder`` is where a walk starts: judge it by its real path."""
        if folder not in self.known:
            self.known[folder] = self._really_inside(folder)

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
            ok = self._really_inside(path)
        else:
            parent = os.path.dirname(path)
            ok = parent != path and self.inside(parent)  # "/" is reached only from outside
        self.known[path] = ok
        return ok

    def allows(self, path: str, lst: os.stat_result | None = None) -> bool:
        """Whether ``path`` may be read or listed; a refusal is remembered for the report."""
        if self.inside(path, lst):
            return True
        self.refused.setdefault(path, os.path.realpath(path))
        return False

    def skips(self, entry: Entry) -> list[Skip]:
        fence = ", ".join(self.roots)
        out = [
            Skip(
                entry.origin,
                entry.text,
                "link_outside",
                f"{entry.origin}: warmup config line {entry.text!r} reaches {path}, which leads "
                f"through a symlink to {real}, outside the volume and the model folders "
                f"({fence}); skipped, never read (move the model into one of them, or name "
                "its folder in $COMFYUI_PATH/extra_model_paths.yaml)",
            )
            for path, real in self.refused.items()
        ]
        out += [
            Skip(
                entry.origin,
                entry.text,
                "link_loop",
                f"{entry.origin}: warmup config line {entry.text!r} reaches {path}, a symlink "
                "that loops; skipped (point the link at the model file)",
            )
            for path in self.loops
        ]
        return out


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
    if not fence.allows(directory):
        return
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
    partial copy, inside the fence (a link leading out is refused, a loop noted)."""
    if path.endswith(PARTIAL_SUFFIX):
        return None
    try:
        st = lst = os.lstat(path)
        if stat.S_ISLNK(lst.st_mode):
            st = os.stat(path)
    except OSError as exc:  # missing, a dangling link, a loop
        if exc.errno == errno.ELOOP:
            fence.loops.append(path)
        return None
    if not stat.S_ISREG(st.st_mode) or not fence.allows(path, lst):
        return None
    return st


def resolve_lenient(entry: Entry, search: SearchPath) -> tuple[list[ModelFile], list[Skip]]:
    """The files one line matches, in name order, each name found in the first folder of
    ``search.folders`` that holds it; and what was refused on the way."""
    fence = _Fence(search.fence)
    found: dict[str, ModelFile] = {}
    for folder in search.folders(entry.type):
        type_dir = str(folder)
        fence.seed(type_dir)
        for path in _candidates(entry, type_dir, fence):
            name = path[len(type_dir) + 1 :]
            if name in found:
                continue  # an earlier folder holds it: ComfyUI would load that one
            st = _model_file(path, fence)
            if st is not None:
                found[name] = ModelFile(
                    entry.type, name, Path(path), st.st_size, st.st_mtime_ns, entry
                )
    return [found[name] for name in sorted(found)], fence.skips(entry)


def resolve(entry: Entry, search: SearchPath) -> list[ModelFile]:
    """The files one line matches (see ``resolve_lenient``); ConfigError naming every link
    refused on the way, for this line alone."""
    files, skipped = resolve_lenient(entry, search)
    if skipped:
        raise ConfigError([s.message for s in skipped])
    return files


def expand(entries: Sequence[Entry], search: SearchPath) -> Expansion:
    """Match each entry in ``search``; each file once, in priority order; links refused
    are skipped and listed, the rest of their line is kept.  The ``@auto`` line is not
    matched here: ``usage/auto.py`` expands it."""
    files: list[ModelFile] = []
    seen: set[tuple[str, str]] = set()
    unmatched: list[Entry] = []
    skipped: list[Skip] = []
    for entry in entries:
        if entry.auto:
            continue
        matches, refused = resolve_lenient(entry, search)
        skipped += refused
        if not matches and not refused:
            unmatched.append(entry)
        for f in matches:
            key = (comfyui_folder(f.type), f.name)  # unet/x and diffusion_models/x: one model
            if key not in seen:
                seen.add(key)
                files.append(f)
    return Expansion(files=files, unmatched=unmatched, skipped=skipped)
