"""Typed reads of a YAML document's nodes that keep each key's line: a config file's errors
then say ``<file>:<line>: <key>: <why>``, and every problem is collected before one error.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"


class NodeReader:
    """Walks the YAML nodes, collecting every problem with its line."""

    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self.what = what  # "web config": the first words of every problem
        self.problems: list[str] = []
        self.lines: dict[str, int] = {}

    def fail(self, node: Node, key: str, why: str) -> None:
        self.problems.append(f"{self.what} {self.path}:{node.start_mark.line + 1}: {key}: {why}")

    def mapping(
        self, node: Node, key: str, known: tuple[str, ...] | None
    ) -> dict[str, tuple[Node, Node]]:
        """{key: (key node, value node)}; unknown and repeated keys are problems."""
        if is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            self.fail(node, key or "(top level)", "expected a mapping of keys to values")
            return {}
        found: dict[str, tuple[Node, Node]] = {}
        for knode, vnode in node.value:
            name = str(knode.value) if isinstance(knode, ScalarNode) else "?"
            full = f"{key}.{name}" if key else name
            if not isinstance(knode, ScalarNode) or knode.tag != STR:
                self.fail(knode, full, "keys must be plain strings")
            elif name in found:
                self.fail(knode, full, "appears twice (keep one)")
            elif known is not None and name not in known:
                self.fail(knode, full, f"unknown key (known here: {', '.join(known)})")
            else:
                found[name] = (knode, vnode)
                self.lines[full] = knode.start_mark.line + 1
        return found

    def string(self, node: Node, key: str) -> str:
        if is_null(node):
            return ""
        if isinstance(node, ScalarNode) and node.tag == STR:
            return str(node.value)
        self.fail(node, key, f"expected a string, not {shown(node)}")
        return ""

    def boolean(self, node: Node, key: str, default: bool) -> bool:
        if is_null(node):
            return default
        if isinstance(node, ScalarNode) and node.tag == BOOL:
            return bool(yaml.safe_load(node.value))
        self.fail(node, key, f"expected true or false, not {shown(node)}")
        return default

    def integer(self, node: Node, key: str) -> int | None:
        if isinstance(node, ScalarNode) and node.tag == INT:
            return int(yaml.safe_load(node.value))
        self.fail(node, key, f"expected a whole number, not {shown(node)}")
        return None

    def strings(self, node: Node, key: str) -> tuple[str, ...]:
        if is_null(node):
            return ()
        if not isinstance(node, SequenceNode):
            self.fail(node, key, f"expected a list of strings, not {shown(node)}")
            return ()
        return tuple(self.string(item, key) for item in node.value)

    def choice(self, node: Node, key: str, options: tuple[str, ...], default: str) -> str:
        value = self.string(node, key)
        if not value:
            return default
        if value not in options:
            self.fail(node, key, f"{value!r} is not one of {', '.join(options)}")
            return default
        return value

    def file(self, node: Node, key: str) -> Path | None:
        value = self.string(node, key)
        return self.path.parent / value if value else None


def is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == NULL


def shown(node: Node) -> str:
    if isinstance(node, ScalarNode):
        return repr(node.value)
    return "a list" if isinstance(node, SequenceNode) else "a mapping"
