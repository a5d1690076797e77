"""Markdown cells of the benchmarks' tables, and the names of the two targets they time.

Pure: values in, text out.  A goal's verdict is ``yes``/``NO``; in a smoke run (tiny files)
goals are not judged.
"""

from __future__ import annotations

LOCAL, VOLUME = "local disk", "slow volume"


def row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def num(x: float | None, fmt: str, suffix: str = "") -> str:
    """``x`` formatted, or ``-`` when there is no figure."""
    return "-" if x is None else f"{x:{fmt}}{suffix}"


def verdict(met: bool | None, smoke: bool) -> str:
    """The "met" cell of a goal: ``- (smoke run)``, ``-`` when not measured, ``yes``, ``NO``."""
    if smoke:
        return "- (smoke run)"
    return "-" if met is None else "yes" if met else "NO"
