"""The variables of RunPod's conventions (``env_vars.ENV_VARS`` lists them after comfy-init's
own): SSH and JupyterLab switches, the hooks' time limit, and the variables RunPod itself
sets (``PUBLIC_KEY`` from the account's SSH keys, ``RUNPOD_ENDPOINT_ID`` in serverless
workers) or its templates ask for (``JUPYTER_PASSWORD``)."""

from __future__ import annotations

from typing import Any

from comfy_init.env_values import Choice, EnvVar, Seconds, Text

# auto: on when its variable is set, except on serverless workers; 1: on; 0: off.
SWITCH = Choice(("auto", "1", "0"))

RUNPOD_VARS: tuple[EnvVar[Any], ...] = (
    EnvVar(
        "PUBLIC_KEY",
        "public_key",
        Text("OpenSSH public keys, one per line, or nothing", may_be_empty=True),
        "",
        "keys allowed to SSH in as root (RunPod sets it from your account's SSH keys); "
        "added once to `/root/.ssh/authorized_keys`",
    ),
    EnvVar(
        "SSH",
        "ssh",
        SWITCH,
        "auto",
        "`auto`: sshd runs when `PUBLIC_KEY` is set, except on serverless workers; `1`: "
        "always (keys already in `authorized_keys`); `0`: never",
    ),
    EnvVar(
        "JUPYTER_PASSWORD",
        "jupyter_password",
        Text("a password, or nothing", may_be_empty=True),
        "",
        "JupyterLab's password (its token); JupyterLab runs on 8888 only with one",
    ),
    EnvVar(
        "JUPYTER",
        "jupyter",
        SWITCH,
        "auto",
        "`auto`: JupyterLab runs when `JUPYTER_PASSWORD` is set and it is installed, except "
        "on serverless workers; `1`: always (needs the password); `0`: never",
    ),
    EnvVar(
        "HOOK_TIMEOUT",
        "hook_timeout",
        Seconds(1, 86400),
        600.0,
        "seconds `/pre_start.sh` and `/post_start.sh` may each run before they are stopped",
    ),
    EnvVar(
        "RUNPOD_ENDPOINT_ID",
        "runpod_endpoint_id",
        Text("an endpoint id, or nothing", may_be_empty=True),
        "",
        "set by RunPod in serverless workers: SSH and JupyterLab then default to off",
    ),
)
