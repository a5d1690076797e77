"""Which of SSH and JupyterLab run: each off when its variable is unset, off by default on
serverless workers, off with a reason when not installed; JupyterLab's command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from comfy_init.errors import ConfigError
from comfy_init.runpod_conventions import services
from comfy_init.runpod_conventions.services import Service


def decide(**changes: Any) -> services.Services:
    args: dict[str, Any] = {
        "ssh": "auto",
        "jupyter": "auto",
        "public_key": "ssh-ed25519 AAAA me",
        "jupyter_password": "secret",
        "serverless": False,
        "sshd": "/usr/sbin/sshd",
        "jupyter_lab": "/usr/local/bin/jupyter-lab",
    }
    return services.decide(**{**args, **changes})


def test_a_pod_with_key_and_password_runs_both() -> None:
    assert decide() == services.Services(
        ssh=Service(True, "PUBLIC_KEY is set"), jupyter=Service(True, "JUPYTER_PASSWORD is set")
    )


def test_each_is_off_when_its_variable_is_unset() -> None:
    got = decide(public_key="  ", jupyter_password="")
    assert got.ssh == Service(False, "PUBLIC_KEY is not set")
    assert got.jupyter == Service(False, "JUPYTER_PASSWORD is not set")


def test_a_serverless_worker_runs_neither_unless_asked_explicitly() -> None:
    got = decide(serverless=True)
    assert not got.ssh.run
    assert not got.jupyter.run
    assert "RUNPOD_ENDPOINT_ID" in got.ssh.why
    assert "SSH=1" in got.ssh.why
    assert decide(serverless=True, ssh="1", jupyter="1") == services.Services(
        ssh=Service(True, "SSH=1"), jupyter=Service(True, "JUPYTER=1")
    )


def test_zero_turns_each_off_whatever_is_set() -> None:
    assert decide(ssh="0", jupyter="0") == services.Services(
        ssh=Service(False, "SSH=0"), jupyter=Service(False, "JUPYTER=0")
    )


def test_ssh_on_without_a_key_still_runs_sshd_for_keys_already_there() -> None:
    assert decide(ssh="1", public_key="").ssh == Service(True, "SSH=1")


def test_a_missing_program_turns_its_service_off_saying_what_to_install() -> None:
    got = decide(sshd=None, jupyter_lab=None)
    assert got.ssh == Service(
        False, "sshd is not installed in the image (apt-get install openssh-server)"
    )
    assert not got.jupyter.run
    assert "pip install jupyterlab" in got.jupyter.why


def test_jupyter_on_without_a_password_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"JUPYTER=1 but JUPYTER_PASSWORD is empty"):
        decide(jupyter="1", jupyter_password="")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [({"RUNPOD_ENDPOINT_ID": "abc123"}, True), ({"RUNPOD_POD_ID": "x"}, False), ({}, False)],
)
def test_serverless_is_told_by_the_endpoint_id(environ: dict[str, str], expected: bool) -> None:
    assert services.is_serverless(environ) is expected


def test_jupyter_runs_as_runpod_starts_it_rooted_at_the_volume_password_not_in_argv() -> None:
    argv = services.jupyter_argv("/usr/local/bin/jupyter-lab", Path("/workspace"))
    assert argv[0] == "/usr/local/bin/jupyter-lab"
    assert {"--allow-root", "--no-browser", "--ip=*", "--port=8888"} <= set(argv)
    assert "--ServerApp.root_dir=/workspace" in argv
    (terminal,) = [a for a in argv if a.startswith("--ServerApp.terminado_settings=")]
    assert json.loads(terminal.split("=", 1)[1]) == {"shell_command": ["/bin/bash"]}
    assert services.jupyter_environment("s3cret") == {"JUPYTER_TOKEN": "s3cret"}
    assert not any("s3cret" in a for a in argv)
