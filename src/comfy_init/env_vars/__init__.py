"""Every environment variable comfy-init reads, each declared once.

Each is an ``EnvVar`` (``env_values``), declared by area: the models (``models.py``: volume,
cache, warmup config, copying, ``@auto``), the processes (``processes.py``: ComfyUI,
supervisord, the sidecar, logs) and RunPod's conventions
(``runpod_conventions/variables.py``).  ``settings.from_env`` loops over ``ENV_VARS``; the
README's "Configuration" table is ``readme_table()`` (``tests/test_docs.py`` keeps them
equal; ``UPDATE_README=1`` rewrites the README's copy).  A new variable is one entry in its
area's ``VARS`` and its field in ``Settings``.
"""

from __future__ import annotations

from typing import Any

from comfy_init.env_values import EnvVar, markdown
from comfy_init.env_vars import models, processes
from comfy_init.env_vars.models import WARMUP_CONFIG_NAME
from comfy_init.runpod_conventions.variables import RUNPOD_VARS

__all__ = ["DEFAULTS", "ENV_VARS", "WARMUP_CONFIG_NAME", "EnvVar", "readme_table"]

# The README table's order: the models, the processes, then RunPod's conventions.
ENV_VARS: tuple[EnvVar[Any], ...] = (*models.VARS, *processes.VARS, *RUNPOD_VARS)

# The defaults as the variables' text (what an unset variable stands for).
DEFAULTS: dict[str, str] = {v.name: v.default_text for v in ENV_VARS}

README_HEADER = ("| variable | default | accepts | meaning |", "|---|---|---|---|")


def readme_row(var: EnvVar[Any]) -> str:
    default = markdown(var.default_text) if var.default_text else "(empty)"
    accepts = var.kind.accepts(markdown)
    return f"| `{var.name}` | {default} | {accepts} | {var.meaning} |"


def readme_table() -> str:
    """The README's "Configuration" table, one row per variable."""
    return "\n".join([*README_HEADER, *(readme_row(v) for v in ENV_VARS)]) + "\n"
