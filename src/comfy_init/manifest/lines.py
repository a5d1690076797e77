"""The warmup config (``warmup_models.conf``): find the file and read its lines.

One ``<type>/<path>`` per line, the name ComfyUI knows a model by; ``#`` starts a comment
(a whole line, or after whitespace); blank lines are ignored.  ``<path>`` may use ``*``, ``?``,
``[..]`` within one folder and ``**`` (a whole component) for any depth of subfolders.  An
absolute path inside a model folder (``anchors``: the models folder, whose first level is
the type, or a folder of the user's YAML, of one type) is read as the ``<type>/<path>`` it
names there; any other absolute path is a bad line.  A line ``@auto`` (at most one) stands
for the models the fleet really loaded (``usage/auto.py``).  Line order is priority.  Reading
lines is pure; what a line matches on disk is ``manifest/expand.py``'s business."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from comfy_init.errors import ConfigError
from comfy_init.settings import Settings

AUTO_LINE = "@auto"
_WILDCARD = re.compile(r"[*?\[]")
_TRAILING_COMMENT = re.compile(r"\s#.*$")
_FIX = "write <type>/<path> relative to $COMFYUI_PATH/models, e.g. checkpoints/model.safetensors"


@dataclass(frozen=True)
class Entry:
    """One config line."""

    type: str  # first component: "checkpoints", "loras", "unet", ... (any folder under models)
    pattern: str  # the rest, posix; may contain * ? [..] and ** (across subfolders)
    origin: str  # "path/to/warmup_models.conf:LINE"
    auto: bool = False  # the @auto line (type and pattern empty): usage/auto.py expands it

    @property
    def text(self) -> str:
        """The line as the user wrote it (without comment and surrounding whitespace)."""
        return AUTO_LINE if self.auto else f"{self.type}/{self.pattern}"


@dataclass(frozen=True)
class Skip:
    """A config line, or one file a line matched, left out of the warmup, and why."""

    origin: str  # "file:line" of the config line
    text: str  # the line as written
    reason: str  # one of SKIP_REASONS
    message: str  # "file:line: warmup config line '...' <what is wrong> (<what to do>)"


# Why a line or a file is skipped: the line itself is malformed or leaves the models folder;
# a symlink leads outside the folders a model may be read from; a symlink loops.
SKIP_REASONS: tuple[str, ...] = ("invalid", "link_outside", "link_loop")


@dataclass(frozen=True)
class Lines:
    """A config text read line by line: the good entries and, per bad line, a ``Skip``."""

    entries: list[Entry]  # config order
    skipped: list[Skip]  # config order

    @property
    def problems(self) -> list[str]:
        return [s.message for s in self.skipped]


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
    (
        lambda line, _: line.startswith("@"),
        f"is not a line comfy-init knows (the only one starting with '@' is {AUTO_LINE}, alone)",
    ),
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


Anchor = tuple[str, str | None]  # (absolute folder, its type; None: a tree of type folders)


def _relative(line: str, anchors: Sequence[Anchor]) -> str | None:
    """``<type>/<path>`` of an absolute ``line`` inside the most specific anchor, or None."""
    best: tuple[int, str] | None = None
    for folder, type_ in anchors:
        root = folder.rstrip("/")
        if line.startswith(root + "/") and (best is None or len(root) > best[0]):
            rest = line[len(root) + 1 :]
            best = (len(root), rest if type_ is None else f"{type_}/{rest}")
    return None if best is None else best[1]


def read(text: str, origin_file: str, anchors: Sequence[Anchor] = ()) -> Lines:
    """Every line of a config text, a bad one reported without hiding the others;
    absolute lines inside one of ``anchors`` are read relative to it."""
    entries: list[Entry] = []
    skipped: list[Skip] = []
    auto: Entry | None = None
    # Lines end at "\n" only (as editors count them); a stray "\r" is trailing whitespace.
    for number, raw in enumerate(text.split("\n"), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        line = _TRAILING_COMMENT.sub("", stripped).strip()
        origin = f"{origin_file}:{number}"
        if line == AUTO_LINE:
            if auto is None:
                auto = Entry(type="", pattern="", origin=origin, auto=True)
                entries.append(auto)
            else:
                message = (
                    f"{origin}: warmup config line {line!r} appears again, first at "
                    f"{auto.origin} (keep one)"
                )
                skipped.append(Skip(origin, line, "invalid", message))
            continue
        relative = _relative(line, anchors) if line.startswith("/") else line
        if relative is None and anchors:
            folders = ", ".join(folder for folder, _ in anchors)
            problem: str | None = (
                f"is an absolute path outside the model folders ({folders}) (write "
                "<type>/<path>, or a path inside one of them)"
            )
        else:
            problem = _line_problem(relative or line)
        if problem is not None:
            message = f"{origin}: warmup config line {line!r} {problem}"
            skipped.append(Skip(origin, line, "invalid", message))
            continue
        type_, _, pattern = (relative or line).partition("/")
        entries.append(Entry(type=type_, pattern=pattern, origin=origin))
    return Lines(entries=entries, skipped=skipped)


def parse(text: str, origin_file: str) -> list[Entry]:
    """The entries of a config text; ConfigError lists every bad line as ``file:line: ...``."""
    lines = read(text, origin_file)
    if lines.problems:
        raise ConfigError(lines.problems)
    return lines.entries


def load(path: Path) -> list[Entry]:
    """Read and parse the config file at ``path`` (ConfigError lists every bad line)."""
    return parse(_text(path), str(path))


def load_lines(path: Path, anchors: Sequence[Anchor] = ()) -> Lines:
    """Read the config file at ``path``: its good lines, and a ``Skip`` per bad one."""
    return read(_text(path), str(path), anchors)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"warmup config {path}: file not found (create it, or set WARMUP_CONFIG)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"warmup config {path}: cannot be read: {exc} (make it a readable UTF-8 text file)"
        ) from None


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
