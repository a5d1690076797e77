"""Which of RunPod's services a pod runs (SSH, JupyterLab) and how JupyterLab is started.

Pure: the decision takes the variables and what is installed, and says for each service
whether it runs and, when it does not, why (a log line, so a user who expected SSH learns
what to set).  Serverless workers (RunPod sets ``RUNPOD_ENDPOINT_ID``) leave both off unless
asked for explicitly (``SSH=1``, ``JUPYTER=1``): a worker is not logged into.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from comfy_init.errors import ConfigError

# RunPod sets it in serverless workers only (pods have RUNPOD_POD_ID).
SERVERLESS_VARIABLE = "RUNPOD_ENDPOINT_ID"
JUPYTER_PORT = 8888
Switch = Literal["auto", "1", "0"]  # the SSH / JUPYTER variables


def is_serverless(environ: Mapping[str, str]) -> bool:
    return bool(environ.get(SERVERLESS_VARIABLE, "").strip())


@dataclass(frozen=True)
class Service:
    run: bool
    why: str  # what decided it, e.g. "PUBLIC_KEY is not set"


@dataclass(frozen=True)
class Services:
    ssh: Service
    jupyter: Service


def decide(
    *,
    ssh: Switch,
    jupyter: Switch,
    public_key: str,
    jupyter_password: str,
    serverless: bool,
    sshd: str | None,
    jupyter_lab: str | None,
) -> Services:
    """What runs.  ``sshd`` / ``jupyter_lab``: the installed programs, None if absent.
    Raises ConfigError when JupyterLab is asked for without a password (it would be open
    to anyone who finds the port)."""
    if jupyter == "1" and not jupyter_password:
        raise ConfigError(
            "environment: JUPYTER=1 but JUPYTER_PASSWORD is empty: JupyterLab would accept "
            "anyone (set JUPYTER_PASSWORD, or JUPYTER=0)"
        )
    return Services(
        ssh=_one(
            switch=ssh,
            name="SSH",
            variable="PUBLIC_KEY",
            asked=bool(public_key.strip()),
            serverless=serverless,
            installed=sshd is not None,
            missing="sshd is not installed in the image (apt-get install openssh-server)",
        ),
        jupyter=_one(
            switch=jupyter,
            name="JUPYTER",
            variable="JUPYTER_PASSWORD",
            asked=bool(jupyter_password),
            serverless=serverless,
            installed=jupyter_lab is not None,
            missing="jupyter-lab is not installed in the image (pip install jupyterlab)",
        ),
    )


def _one(
    *,
    switch: Switch,
    name: str,
    variable: str,
    asked: bool,
    serverless: bool,
    installed: bool,
    missing: str,
) -> Service:
    if switch == "0":
        return Service(False, f"{name}=0")
    if switch == "auto" and not asked:
        return Service(False, f"{variable} is not set")
    if switch == "auto" and serverless:
        return Service(
            False, f"serverless worker ({SERVERLESS_VARIABLE} is set; {name}=1 turns it on)"
        )
    if not installed:
        return Service(False, missing)
    return Service(True, f"{name}=1" if switch == "1" else f"{variable} is set")


def jupyter_argv(jupyter_lab: str, root_dir: Path, port: int = JUPYTER_PORT) -> list[str]:
    """JupyterLab as RunPod's start script runs it (as root, every interface, no browser,
    deletes for real, a bash terminal), rooted at the volume.  The password is not here:
    JupyterLab reads it from ``JUPYTER_TOKEN`` (``jupyter_environment``), so it is not on a
    command line that ``ps`` shows."""
    return [
        jupyter_lab,
        "--allow-root",
        "--no-browser",
        "--ip=*",
        f"--port={port}",
        f"--ServerApp.root_dir={root_dir}",
        "--ServerApp.allow_origin=*",
        "--FileContentsManager.delete_to_trash=False",
        "--ServerApp.terminado_settings=" + json.dumps({"shell_command": ["/bin/bash"]}),
    ]


def jupyter_environment(password: str) -> dict[str, str]:
    return {"JUPYTER_TOKEN": password}
