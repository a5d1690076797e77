"""One environment variable: its name, the ``Settings`` field it sets, its kind (parser,
range and the words for them, ``env_values``), its typed default and its meaning; and the
kinds and units several declarations share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from comfy_init.env_values import AbsolutePath, Kind, Whole, markdown

T = TypeVar("T")

MIB = 1024 * 1024
DAY = 86400.0
DIRECTORY = AbsolutePath("a directory path")
PORT = Whole(1, 65535, noun="a port number")


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

    def readme_row(self) -> str:
        """Its row of the README's "Configuration" table."""
        default = markdown(self.default_text) if self.default_text else "(empty)"
        accepts = self.kind.accepts(markdown)
        return f"| `{self.name}` | {default} | {accepts} | {self.meaning} |"
