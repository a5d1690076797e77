"""The start's RunPod set-up leaves a machine alone when neither SSH nor JupyterLab runs
(``comfy-init start`` on a development machine, a serverless worker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_init import settings
from comfy_init.pid1.children import Reaper
from comfy_init.runpod_conventions import pod, shell_environment, ssh
from comfy_init.wakeup import Wakeup

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIM0jy/yqTkgg0GLCo9kMTebjflkiJa+EeIKApOZLZYVi me"


@pytest.fixture
def wakeup() -> Iterator[Wakeup]:
    w = Wakeup()
    yield w
    w.close()


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {"PUBLIC_KEY": KEY, "SSH": "0", "JUPYTER_PASSWORD": "x", "JUPYTER": "0"},
        {"PUBLIC_KEY": KEY, "JUPYTER_PASSWORD": "x", "RUNPOD_ENDPOINT_ID": "ep"},
    ],
    ids=["nothing set", "both turned off", "serverless"],
)
def test_nothing_runs_and_nothing_is_written_when_neither_service_is_on(
    environ: dict[str, str], wakeup: Wakeup
) -> None:
    before = _stamps()
    conf = settings.from_env(environ)
    keys = ssh.parse_public_keys(conf.public_key)
    got = pod.prepare(conf, keys, environ, reaper=Reaper(), wakeup=wakeup)
    assert (got.sshd, got.jupyter_lab, got.signum) == (None, None, None)
    assert _stamps() == before


def _stamps() -> dict[Path, float | None]:
    """Modification times of what the set-up would write (None: absent)."""
    paths = [
        shell_environment.ENVIRONMENT_FILE,
        pod.ROOT_HOME / ".bashrc",
        pod.ROOT_HOME / ".ssh" / "authorized_keys",
    ]
    return {p: p.stat().st_mtime if p.exists() else None for p in paths}
