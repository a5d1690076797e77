"""The README's tables are kept true to the code: a change to one without the other fails."""

from __future__ import annotations

import re
from pathlib import Path

from comfy_init import errors, settings

README = Path(__file__).resolve().parent.parent / "README.md"


def table_rows(heading: str) -> list[list[str]]:
    """Cells of the first Markdown table under ``## heading`` (header and rule skipped)."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README has no '## {heading}' section"
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in match.group(1).splitlines()
        if line.startswith("|")
    ]
    assert len(rows) > 2, f"README section '{heading}' has no table"
    return rows[2:]


def unquote(cell: str) -> str:
    return "" if cell == "(empty)" else cell.strip("`")


def test_configuration_table_lists_every_variable_with_its_default_in_code_order() -> None:
    rows = table_rows("Configuration")
    documented = [(unquote(r[0]), unquote(r[1])) for r in rows]
    in_code = [(v.name, v.default) for v in settings.ENV_VARS]
    assert documented == in_code


def test_configuration_table_meanings_match_the_code() -> None:
    rows = table_rows("Configuration")
    assert [r[2] for r in rows] == [v.meaning for v in settings.ENV_VARS]


def test_exit_code_table_matches_the_error_classes() -> None:
    rows = table_rows("Exit codes")
    documented = {r[0].strip("`") for r in rows}
    codes = {
        str(value)
        for name, value in vars(errors).items()
        if name.startswith("EXIT_") and isinstance(value, int)
    }
    assert codes <= documented, f"undocumented exit codes: {codes - documented}"
    assert "128+N" in documented
