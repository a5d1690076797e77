"""How the text of an environment variable is read: one kind per shape of value.

A kind parses the text (``ValueError`` when it is out of range or malformed), says in words
what it accepts, and writes a value back as text.  The same words end the error message
(``expected <accepts>``) and fill the README's "accepts" column, so they cannot drift.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

T = TypeVar("T")

# How a literal value is quoted in a description: bare in an error message, `code` in
# Markdown.
Quote = Callable[[str], str]


def plain(text: str) -> str:
    return text


def markdown(text: str) -> str:
    return f"`{text}`"


class Kind(ABC, Generic[T]):
    """One shape of value: parse, describe, show."""

    @abstractmethod
    def parse(self, text: str) -> T:
        """The value of ``text``; ValueError if it is malformed or out of range."""

    @abstractmethod
    def accepts(self, quote: Quote = plain) -> str:
        """What ``parse`` accepts, in words (literal values passed through ``quote``)."""

    def show(self, value: T) -> str:
        """``value`` as the variable's text (``parse(show(v)) == v``)."""
        return str(value)

    def setting(self, value: T) -> object:
        """The ``Settings`` field's value for ``value`` (a unit conversion, if any)."""
        return value


TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Flag(Kind[bool]):
    def parse(self, text: str) -> bool:
        low = text.strip().lower()
        if low in TRUE:
            return True
        if low in FALSE:
            return False
        raise ValueError(text)

    def accepts(self, quote: Quote = plain) -> str:
        return f"{quote('0')} or {quote('1')}"

    def show(self, value: bool) -> str:
        return "1" if value else "0"


@dataclass(frozen=True)
class Whole(Kind[int]):
    """A whole number from ``lo`` to ``hi`` in ``unit``; the field holds it times ``scale``."""

    lo: int
    hi: int
    unit: str = ""
    scale: int = 1
    noun: str = "a whole number"

    def parse(self, text: str) -> int:
        n = int(text.strip())
        if not self.lo <= n <= self.hi:
            raise ValueError(text)
        return n

    def accepts(self, quote: Quote = plain) -> str:
        of = f" of {self.unit}" if self.unit else ""
        return f"{self.noun}{of} from {self.lo} to {self.hi}"

    def setting(self, value: int) -> object:
        return value * self.scale


@dataclass(frozen=True)
class Seconds(Kind[float]):
    lo: float
    hi: float

    def parse(self, text: str) -> float:
        x = float(text.strip())
        if not self.lo <= x <= self.hi:
            raise ValueError(text)
        return x

    def accepts(self, quote: Quote = plain) -> str:
        return f"seconds from {self.lo:g} to {self.hi:g}"

    def show(self, value: float) -> str:
        return f"{value:g}"


@dataclass(frozen=True)
class Choice(Kind[str]):
    options: tuple[str, ...]

    def parse(self, text: str) -> str:
        value = text.strip().lower()
        if value not in self.options:
            raise ValueError(text)
        return value

    def accepts(self, quote: Quote = plain) -> str:
        words = [quote(o) for o in self.options]
        if len(words) == 2:
            return " or ".join(words)
        return "one of " + ", ".join(words)


@dataclass(frozen=True)
class Text(Kind[str]):
    """Text, stripped; empty only when ``may_be_empty``."""

    what: str
    may_be_empty: bool = False

    def parse(self, text: str) -> str:
        value = text.strip()
        if not value and not self.may_be_empty:
            raise ValueError(text)
        return value

    def accepts(self, quote: Quote = plain) -> str:
        return self.what


@dataclass(frozen=True)
class AbsolutePath(Kind[Path]):
    """A path, made absolute (``~`` expanded, relative to the working directory)."""

    what: str

    def parse(self, text: str) -> Path:
        if not text.strip():
            raise ValueError(text)
        return Path(text.strip()).expanduser().absolute()

    def accepts(self, quote: Quote = plain) -> str:
        return self.what


@dataclass(frozen=True)
class OptionalPath(Kind[Path | None]):
    """A path as ``AbsolutePath``, or nothing (empty)."""

    what: str

    def parse(self, text: str) -> Path | None:
        return AbsolutePath(self.what).parse(text) if text.strip() else None

    def accepts(self, quote: Quote = plain) -> str:
        return f"{self.what} or nothing"

    def show(self, value: Path | None) -> str:
        return "" if value is None else str(value)


@dataclass(frozen=True)
class ShellArgs(Kind[tuple[str, ...]]):
    """Arguments split as a POSIX shell would (quotes must balance)."""

    def parse(self, text: str) -> tuple[str, ...]:
        return tuple(shlex.split(text))

    def accepts(self, quote: Quote = plain) -> str:
        return "shell-quoted arguments"

    def show(self, value: tuple[str, ...]) -> str:
        return shlex.join(value)


@dataclass(frozen=True)
class EnvVar(Generic[T]):
    name: str
    field: str  # the Settings field it sets
    kind: Kind[T]
    default: T  # in the variable's own unit, as the user writes it
    meaning: str  # Markdown, one line of the README table

    @property
    def default_text(self) -> str:
        return self.kind.show(self.default)

    def read(self, environ: Mapping[str, str]) -> Any:
        """The field's value; ValueError if the variable is set to something its kind refuses."""
        text = environ.get(self.name)
        return self.kind.setting(self.default if text is None else self.kind.parse(text))


# Kinds and units that several declarations share (``env_vars``).
MIB = 1024 * 1024
DAY = 86400.0
DIRECTORY = AbsolutePath("a directory path")
PORT = Whole(1, 65535, noun="a port number")
