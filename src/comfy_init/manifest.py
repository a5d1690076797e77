"""The warmup config (``warmup_models.conf``): parse its lines, expand them inside the models tree.

One ``<type>/<path>`` per line, relative to ``$COMFYUI_PATH/models``; ``#`` starts a comment
(a whole line, or after whitespace); blank lines are ignored.  ``<path>`` may use ``*``, ``?``,
``[..]`` within one folder and ``**`` (a whole component) for any depth of subfolders.
As in a shell, wildcards skip hidden names; copies in progress (``*.comfy-init-partial``)
and anything but regular files never match.  Line order is priority (earlier lines win when
space runs short); the files of one wildcard line come in name order; a file matched again
by a later line keeps its first place.

Parsing is pure.  Expansion touches the filesystem only below each pattern's literal prefix
(a literal line is a single ``stat``), and refuses any match, or any folder it would list,
whose real path leaves the models tree through a symlink."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from comfy_init.errors import ConfigError
from comfy_init.files.durable import PARTIAL_SUFFIX
from comfy_init.settings import Settings

_WILDCARD = re.compile(r"[*?\[]")
_TRAILING_COMMENT = re.compile(r"\s#.*$")
_FIX = "write <type>/<path> relative to $COMFYUI_PATH/models, e.g. checkpoints/model.safetensors"


@dataclass(frozen=True)
class Entry:
    """One config line."""

    type: str  # first component: "checkpoints", "loras", "unet", ... (any folder under models)
    pattern: str  # the rest, posix; may contain * ? [..] and ** (across subfolders)
    origin: str  # "path/to/warmup_models.conf:LINE"

    @property
    def text(self) -> str:
        """The line as the user wrote it (without comment and surrounding whitespace)."""
        return f"{self.type}/{self.pattern}"


@dataclass(frozen=True)
class ModelFile:
    type: str
    name: str  # posix path below the type dir, e.g. "SDXL/x.safetensors"
    source: Path  # absolute, under models_path
    size: int  # st_size of the source
    mtime_ns: int  # st_mtime_ns of the source
    entry: Entry  # first entry that matched (priority)


@dataclass(frozen=True)
class Expansion:
    files: list[ModelFile]  # config order = priority; each file once
    unmatched: list[Entry]  # lines that matched no regular file


def has_wildcard(component: str) -> bool:
    return _WILDCARD.search(component) is not None


def _control(c: str) -> bool:
    return ord(c) < 32 or 127 <= ord(c) < 160  # C0, DEL and C1 controls


# (test on the line and its "/" components, what is wrong and what to do), checked in order.
_RULES: tuple[tuple[Callable[[str, list[str]], bool], str], ...] = (
    (
        lambda line, _: any(_control(c) for c in line),
        "contains a control character (remove it; names are plain text)",
    ),
    (lambda line, _: "\\" in line, "contains a backslash (separate folders with '/')"),
    (lambda line, _: line.startswith("/"), f"is an absolute path ({_FIX})"),
    (
        lambda _, parts: len(parts) < 2,
        f"names a type folder without a file ({_FIX}, or <type>/* for every file)",
    ),
    (
        lambda _, parts: "" in parts,
        f"has an empty path component ('//' or a trailing '/') ({_FIX})",
    ),
    (
        lambda _, parts: ".." in parts,
        f"has a '..' component, which would leave the models folder ({_FIX})",
    ),
    (lambda _, parts: "." in parts, "has a '.' component (remove the './')"),
    (
        lambda _, parts: has_wildcard(parts[0]),
        "has a wildcard in the type folder (name the type folder exactly, e.g. loras/*)",
    ),
    (
        lambda _, parts: any("**" in p and p != "**" for p in parts),
        "uses '**' inside a name ('**' must be a whole component, e.g. loras/**/x.safetensors)",
    ),
)


def _line_problem(line: str) -> str | None:
    """Why ``line`` (comment and whitespace already stripped) is not a valid entry, or None."""
    parts = line.split("/")
    for broken, problem in _RULES:
        if broken(line, parts):
            return problem
    return None


def parse(text: str, origin_file: str) -> list[Entry]:
    """The entries of a config text; ConfigError lists every bad line as ``file:line: ...``."""
    entries: list[Entry] = []
    problems: list[str] = []
    # Lines end at "\n" only (as editors count them); a stray "\r" is trailing whitespace.
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        line = _TRAILING_COMMENT.sub("", stripped).strip()
        origin = f"{origin_file}:{number}"
        problem = _line_problem(line)
        if problem is not None:
            problems.append(f"{origin}: warmup config line {line!r} {problem}")
            continue
        type_, _, pattern = line.partition("/")
        entries.append(Entry(type=type_, pattern=pattern, origin=origin))
    if problems:
        raise ConfigError(problems)
    return entries


def load(path: Path) -> list[Entry]:
    """Read and parse the config file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"warmup config {path}: file not found (create it, or set WARMUP_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"warmup config {path}: cannot be read: {exc} (make it a readable UTF-8 text file)"
        ) from None
    return parse(text, str(path))


def locate(settings: Settings, explicit: str | None) -> Path:
    """The config file to use: ``explicit`` (the CLI's CONFIG) or the first existing candidate."""
    if explicit is not None:
        path = Path(explicit).expanduser().absolute()
        if path.is_file():
            return path
        why = "is a directory" if path.is_dir() else "does not exist"
        raise ConfigError(
            f"warmup config CONFIG={explicit!r}: {path} {why} (pass an existing config file)"
        )
    candidates = settings.warmup_config_candidates()
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"warmup config WARMUP_CONFIG={settings.warmup_config!r}: not found; looked in {looked} "
        f"(create one of these, or set WARMUP_CONFIG to an absolute path)"
    )


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


def expand(entries: Sequence[Entry], models_path: Path) -> Expansion:
    """Match each entry against the models tree; each file once, in priority order."""
    models = str(models_path.absolute())
    files: list[ModelFile] = []
    seen: set[tuple[str, str]] = set()
    unmatched: list[Entry] = []
    for entry in entries:
        type_dir = os.path.join(models, entry.type)
        fence = _Fence(models, entry)
        matches: list[tuple[str, str, os.stat_result]] = []
        for path in _candidates(entry, type_dir, fence):
            st = _model_file(path, fence)
            if st is not None:
                matches.append((path[len(type_dir) + 1 :], path, st))
        if not matches:
            unmatched.append(entry)
        for name, path, st in sorted(matches, key=lambda m: m[0]):
            if (entry.type, name) not in seen:
                seen.add((entry.type, name))
                files.append(
                    ModelFile(entry.type, name, Path(path), st.st_size, st.st_mtime_ns, entry)
                )
    return Expansion(files=files, unmatched=unmatched)
