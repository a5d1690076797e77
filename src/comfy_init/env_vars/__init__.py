"""Every environment variable comfy-init reads, each declared once.

Each is an ``EnvVar`` (``variable.py``), declared by area: the models (``models.py``: volume,
cache, warmup config, copying, ``@auto``) and the processes (``processes.py``: ComfyUI,
supervisord, the sidecar, logs).  ``settings.from_env`` loops over ``ENV_VARS``; the
README's "Configuration" table is ``readme_table()`` (``tests/test_docs.py`` keeps them
equal; ``UPDATE_README=1`` rewrites the README's copy).  A new variable is one entry in its
area's ``VARS`` and its field in ``Settings``.
"""

from __future__ import annotations

from typing import Any

from comfy_init.env_vars import models, processes
from comfy_init.env_vars.models import WARMUP_CONFIG_NAME
from comfy_init.env_vars.variable import EnvVar

__all__ = ["DEFAULTS", "ENV_VARS", "WARMUP_CONFIG_NAME", "EnvVar", "readme_table"]

# The README table's order: the models, then the processes.
ENV_VARS: tuple[EnvVar[Any], ...] = (*models.VARS, *processes.VARS)

# The defaults as the variables' text (what an unset variable stands for).
DEFAULTS: dict[str, str] = {v.name: v.default_text for v in ENV_VARS}

README_HEADER = ("| variable | default | accepts | meaning |", "|---|---|---|---|")


def readme_table() -> str:
    """The README's "Configuration" table, one row per variable."""
    return "\n".join([*README_HEADER, *(v.readme_row() for v in ENV_VARS)]) + "\n"
