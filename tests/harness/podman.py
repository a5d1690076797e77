"""The image built with podman and run as containers, as a user of it would.

Docker cannot run on the test machines; podman (with runc) can, as root, with its settings
in ``image/containers.conf`` (``CONTAINERS_CONF``, so nothing in /etc needs setting up).
The base is made locally by ``image/make-base`` (mmdebstrap; cached by podman between runs,
made only when missing), the image is built from the Dockerfile on it (podman's layer cache
makes a rebuild of unchanged files take seconds), and each container is removed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
CONTAINERS_CONF = REPO / "image" / "containers.conf"
IMAGE = "localhost/comfy-init:test"
# The build reaches PyPI only with this machine's CA bundle (pip in the builder stage).
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def unavailable() -> str | None:
    """Why containers cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "containers need root (podman with runc, as the tests run it)"
    missing = [tool for tool in ("podman", "runc", "mmdebstrap") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not installed (scripts/bootstrap installs them)"
    return None


def require_podman() -> None:
    """Skip where podman truly cannot run; in CI it must, so there it fails instead."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"container tests cannot run in CI: {reason}")
    pytest.skip(reason)


def podman(
    *args: str, timeout: float = 60, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["podman", *args],
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"podman {' '.join(args)}: exit {result.returncode}\n{result.stdout}{result.stderr}"
        )
    return result


def image_size(name: str) -> int:
    return int(podman("image", "inspect", "--format", "{{.Size}}", name).stdout)


def make_base() -> str:
    """The local base image's name (made on first use, ~45 s; cached after)."""
    result = subprocess.run(
        [REPO / "image" / "make-base"],
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def build(base: str, tag: str = IMAGE) -> str:
    """Build the Dockerfile on ``base`` as ``tag``.  Untagged images left by earlier builds
    (their images and builder stages) are removed; this build's stay as the layer cache."""
    output = podman(
        "build",
        "--format=docker",  # the OCI format ignores the Dockerfile's SHELL
        "--isolation=chroot",
        "--network=host",
        f"--volume={CA_BUNDLE}:{CA_BUNDLE}:ro",
        f"--build-arg=BASE_IMAGE={base}",
        f"--tag={tag}",
        str(REPO),
        timeout=600,
    ).stdout
    # Each step's image, as the build printed it ("--> 0123456789a", a prefix of the id).
    used = re.findall(r"^--> ([0-9a-f]{8,})$", output, re.MULTILINE)
    dangling = podman("images", "--quiet", "--no-trunc", "--filter=dangling=true").stdout
    stale = [
        image
        for image in dangling.split()
        if not any(image.removeprefix("sha256:").startswith(step) for step in used)
    ]
    if stale:
        podman("rmi", *stale, check=False)  # one still used by a container is left
    return tag


@dataclass
class Container:
    """One running container of the image, named uniquely; ``remove`` at teardown."""

    name: str

    def exec(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``podman exec``: the command's result, whatever its exit code."""
        return podman("exec", self.name, *argv, timeout=timeout, check=False)

    def state(self, field: str) -> str:
        return podman("inspect", "--format", f"{{{{.State.{field}}}}}", self.name).stdout.strip()

    def running(self) -> bool:
        return self.state("Status") == "running"

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_exec(self, argv: Sequence[str], expect: str, timeout: float = 60) -> str:
        """Run ``argv`` until its output holds ``expect``; the output.  On timeout the
        failure shows the container's log."""

        def attempt() -> str | None:
            if not self.running():
                raise AssertionError(f"container {self.name} stopped:\n{self.logs()}")
            out = self.exec(*argv)
            return out.stdout if expect in out.stdout else None

        try:
            found: str = wait_for(attempt, timeout, f"{expect!r} in {' '.join(argv)}", step=0.3)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\ncontainer log:\n{self.logs()}") from None
        return found

    def stop(self, seconds: int = 10) -> tuple[int, float]:
        """``podman stop -t seconds`` (SIGTERM, SIGKILL after the grace): the exit code and
        how long the stop took."""
        started = time.monotonic()
        podman("stop", "-t", str(seconds), self.name, timeout=seconds + 30)
        return int(self.state("ExitCode")), time.monotonic() - started

    def remove(self) -> None:
        podman("rm", "--force", "--time=0", self.name, check=False)


def run(
    image: str,
    *,
    env: Mapping[str, str],
    volumes: Mapping[Path, str],
    args: Sequence[str] = (),
) -> Container:
    """``podman run -d`` with no network (the container keeps its own loopback: check ports
    from inside with ``exec``), ``env`` and ``volumes`` ({host path: container path})."""
    container = Container(f"comfy-init-test-{uuid.uuid4().hex[:10]}")
    options = [f"--env={key}={value}" for key, value in env.items()]
    options += [f"--volume={host}:{inside}" for host, inside in volumes.items()]
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(container.remove)
        podman(
            "run", "--detach", "--network=none", f"--name={container.name}", *options, image, *args
        )
        cleanup.pop_all()
    return container
