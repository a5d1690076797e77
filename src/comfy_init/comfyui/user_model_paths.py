"""The user's own ``$COMFYUI_PATH/extra_model_paths.yaml``: the folders it adds per model type,
read as ComfyUI reads it (``utils/extra_config.py``).  Read, never written.

Per section: ``base_path`` (``~`` and ``$VARS`` expanded, relative to the YAML's folder) is
joined with each path; without it a relative path is relative to the YAML's folder; a value
is split on line breaks into several paths; ``is_default`` (any truthy value: the string
``"false"`` too) makes ComfyUI put the section's paths before its own ``models/<type>``.
Our own section name (``comfy_init_cache``, should a copy of our file land here) is skipped.

What ComfyUI itself fails to start on (not YAML, an empty file, a document or section that
is not a mapping, a value that is not a string of paths) does not stop a warmup: that part
is left out and reported as ``file:line: ...``, and the rest is used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from comfy_init.comfyui.model_paths import SECTION as OWN_SECTION

_FIX = "ComfyUI itself fails to start on this file"


@dataclass(frozen=True)
class ExtraFolder:
    """One path a section of the user's YAML adds for a model type."""

    key: str  # the type as written: "checkpoints", "unet", a custom node's type, ...
    path: Path  # absolute, normalised as ComfyUI does (os.path.normpath)
    is_default: bool  # put before ComfyUI's own models/<type> (and before earlier ones)
    origin: str  # "file:line" of the value


@dataclass(frozen=True)
class UserModelPaths:
    folders: tuple[ExtraFolder, ...] = ()  # in the order ComfyUI adds them
    problems: tuple[str, ...] = ()  # "file:line: what is wrong (what to do)"


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "empty" if value is None else f"a {type(value).__name__}"


class _Reader:
    """One YAML text: the composed node tree keeps line numbers, each value is built with
    PyYAML's safe constructor (so ``true``, ``~`` and quoting mean what they mean to
    ``yaml.safe_load``)."""

    def __init__(self, text: str, yaml_path: Path) -> None:
        self.loader = yaml.SafeLoader(text)
        self.name = str(yaml_path)
        self.yaml_dir = os.path.dirname(os.path.abspath(yaml_path))
        self.folders: list[ExtraFolder] = []
        self.problems: list[str] = []

    def where(self, node: yaml.Node) -> str:
        return f"{self.name}:{node.start_mark.line + 1}"

    def value(self, node: yaml.Node) -> object:
        return self.loader.construct_object(node, deep=True)

    def read(self) -> None:
        try:
            root = self.loader.get_single_node()
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            why = getattr(exc, "problem", None) or str(exc)
            self.problems.append(f"{self.name}{line}: not valid YAML: {why} ({_FIX}; fix it)")
            return
        finally:
            self.loader.dispose()
        if root is None:
            self.problems.append(f"{self.name}:1: holds no section ({_FIX}; remove it)")
            return
        if not isinstance(root, yaml.MappingNode):
            self.problems.append(
                f"{self.where(root)}: the document is not a mapping of sections "
                f"({_FIX}; write 'name:' then indented 'type: path' lines)"
            )
            return
        for key_node, section in root.value:
            try:
                self.section_node(str(self.value(key_node)), section)
            except yaml.YAMLError as exc:  # a value PyYAML cannot build (a bad tag, ...)
                self.problems.append(f"{self.where(section)}: {exc} ({_FIX}; left out)")

    def section_node(self, name: str, section: yaml.Node) -> None:
        if name == OWN_SECTION:
            return
        if isinstance(section, yaml.ScalarNode) and self.value(section) is None:
            return  # an empty section: ComfyUI skips it too
        if not isinstance(section, yaml.MappingNode):
            self.problems.append(
                f"{self.where(section)}: section {name!r} is {_kind(self.value(section))}, "
                f"not a mapping of types to paths ({_FIX}; left out)"
            )
            return
        self.section(name, section)

    def section(self, name: str, node: yaml.MappingNode) -> None:
        pairs = [(str(self.value(k)), v) for k, v in node.value]
        base_path: str | None = None
        is_default = False
        for key, value_node in pairs:
            if key == "is_default":
                is_default = bool(self.value(value_node))  # "false" is truthy, as in ComfyUI
            elif key == "base_path":
                value = self.value(value_node)
                if not isinstance(value, str):
                    self.problems.append(
                        f"{self.where(value_node)}: {name}.base_path is {_kind(value)}, not a "
                        f"path ({_FIX}; section {name!r} left out)"
                    )
                    return
                base_path = os.path.expandvars(os.path.expanduser(value))
                if not os.path.isabs(base_path):
                    base_path = os.path.abspath(os.path.join(self.yaml_dir, base_path))
        for key, value_node in pairs:
            if key in ("is_default", "base_path"):
                continue
            value = self.value(value_node)
            if not isinstance(value, str):
                self.problems.append(
                    f"{self.where(value_node)}: {name}.{key} is {_kind(value)}, not a string of "
                    f"paths ({_FIX}; write one path per line of a '|' block; left out)"
                )
                continue
            for line in value.split("\n"):
                if line:
                    self.add(key, self.full_path(base_path, line), is_default, value_node)

    def full_path(self, base_path: str | None, line: str) -> str:
        if base_path:
            return os.path.join(base_path, line)
        if os.path.isabs(line):
            return line
        return os.path.abspath(os.path.join(self.yaml_dir, line))

    def add(self, key: str, path: str, is_default: bool, node: yaml.Node) -> None:
        folder = ExtraFolder(key, Path(os.path.normpath(path)), is_default, self.where(node))
        self.folders.append(folder)


def parse(text: str, yaml_path: Path) -> UserModelPaths:
    """The folders of a YAML text read from ``yaml_path``, and its problems."""
    reader = _Reader(text, yaml_path)
    reader.read()
    return UserModelPaths(tuple(reader.folders), tuple(reader.problems))


def load(yaml_path: Path) -> UserModelPaths:
    """The user's YAML at ``yaml_path``; none at all is no problem."""
    try:
        text = yaml_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return UserModelPaths()
    except (OSError, UnicodeDecodeError) as exc:
        return UserModelPaths(
            problems=(f"{yaml_path}: cannot be read: {exc} (make it a readable UTF-8 file)",)
        )
    return parse(text, yaml_path)
