"""The README's tables are kept true to the code: a change to one without the other fails."""

from __future__ import annotations

import os
import re
from pathlib import Path

from comfy_init import env_vars, errors

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


def test_configuration_table_is_the_one_the_declarations_write() -> None:
    """``UPDATE_README=1`` rewrites the README's table from ``env_vars.ENV_VARS``."""
    text = README.read_text(encoding="utf-8")
    section = re.search(r"^## Configuration\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert section, "README has no '## Configuration' section"
    table = re.search(r"^\|.*?\n(?!\|)", section.group(1), re.M | re.S)
    assert table, "README section 'Configuration' has no table"
    expected = env_vars.readme_table()
    if os.environ.get("UPDATE_README") == "1" and table.group(0) != expected:
        start = section.start(1) + table.start()
        README.write_text(text[:start] + expected + text[start + len(table.group(0)) :])
        return
    assert table.group(0) == expected, "run UPDATE_README=1 pytest tests/test_docs.py"


def test_configuration_table_rows_name_every_variable_with_its_default_in_code_order() -> None:
    rows = table_rows("Configuration")
    documented = [(r[0].strip("`"), "" if r[1] == "(empty)" else r[1].strip("`")) for r in rows]
    assert documented == [(v.name, v.default_text) for v in env_vars.ENV_VARS]


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
