"""At start, before supervisord: set up what RunPod's start script would (edge).

Decides which of SSH and JupyterLab run (``services``), logs why each does or does not, and
for SSH puts ``PUBLIC_KEY``'s keys in root's ``authorized_keys``, makes missing host keys
(``ssh-keygen -A``, run the PID 1 way with a time limit) and sshd's privilege separation
directory.  When either runs, the container's environment is written for the shells they
open (``shell_environment``).  Nothing is written when neither runs: on a development
machine ``comfy-init start`` leaves root's files alone.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from comfy_init import logs
from comfy_init.errors import EnvironmentMissing
from comfy_init.pid1.children import Reaper
from comfy_init.runpod_conventions import hooks, services, shell_environment, ssh
from comfy_init.settings import Settings
from comfy_init.wakeup import Wakeup

log = logs.get_logger("runpod")

ROOT_HOME = Path("/root")  # RunPod logs in as root
ETC_SSH = Path("/etc/ssh")
HOST_KEYS_SECONDS = 60.0


@dataclass(frozen=True)
class Pod:
    sshd: str | None = None  # sshd's path when SSH runs
    jupyter_lab: str | None = None  # jupyter-lab's path when JupyterLab runs
    post_start: bool = False  # /post_start.sh exists
    signum: int | None = None  # a stop signal arrived while setting up


def prepare(
    settings: Settings,
    keys: Sequence[ssh.PublicKey],
    environ: Mapping[str, str],
    *,
    reaper: Reaper,
    wakeup: Wakeup,
) -> Pod:
    """Set the pod up; ``keys`` are ``PUBLIC_KEY``'s, parsed (and checked) before."""
    sshd, jupyter_lab = shutil.which("sshd"), shutil.which("jupyter-lab")
    chosen = services.decide(
        ssh=settings.ssh,  # type: ignore[arg-type]  # checked by its Choice kind
        jupyter=settings.jupyter,  # type: ignore[arg-type]
        public_key=settings.public_key,
        jupyter_password=settings.jupyter_password,
        serverless=settings.serverless,
        sshd=sshd,
        jupyter_lab=jupyter_lab,
    )
    for name, service in (("ssh", chosen.ssh), ("jupyter", chosen.jupyter)):
        log.info(
            "runpod_service" if service.run else "runpod_service_off", service=name, why=service.why
        )
    post_start = hooks.POST_START.is_file()
    pod = Pod(
        sshd=sshd if chosen.ssh.run else None,
        jupyter_lab=jupyter_lab if chosen.jupyter.run else None,
        post_start=post_start,
    )
    if pod.sshd is None and pod.jupyter_lab is None:
        return pod
    try:
        bashrc = shell_environment.install(environ, bashrc=ROOT_HOME / ".bashrc")
        log.info(
            "shell_environment_written",
            path=str(shell_environment.ENVIRONMENT_FILE),
            bashrc_changed=bashrc,
        )
        if pod.sshd is not None:
            added = ssh.install_authorized_keys(keys, ROOT_HOME / ".ssh")
            log.info("ssh_keys_authorized", added=added, given=len(keys))
            ssh.PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentMissing(
            f"SSH set-up: cannot write {exc.filename}: {exc.strerror} (the image's root "
            "filesystem must be writable; SSH=0 turns SSH off)"
        ) from None
    if pod.sshd is not None:
        signum = _host_keys(reaper, wakeup)
        if signum is not None:
            return Pod(signum=signum)
    return pod


def _host_keys(reaper: Reaper, wakeup: Wakeup) -> int | None:
    """Make the host keys the image ships without; a stop signal meanwhile is returned."""
    missing = ssh.missing_host_keys(ETC_SSH)
    keygen = shutil.which("ssh-keygen")
    if not missing or keygen is None:
        return None
    outcome = hooks.run(
        ssh.host_keys_argv(keygen),
        name="ssh-keygen",
        timeout=HOST_KEYS_SECONDS,
        reaper=reaper,
        wakeup=wakeup,
    )
    if outcome.signum is not None:
        return outcome.signum
    if outcome.code != 0:
        log.error(
            "ssh_host_keys_failed",
            code=outcome.code,
            timed_out=outcome.timed_out,
            effect="sshd may refuse to start",
        )
    else:
        log.info("ssh_host_keys_made", types=",".join(missing))
    return None
