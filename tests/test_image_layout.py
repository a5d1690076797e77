"""The image's layout works, and the Dockerfile lays it out as image/layout.toml says.

No Docker engine runs here, so the boot tests build the image's file layout themselves: an
overlay of the machine's root with what the Dockerfile adds (the venv made by the same
``image/build-venv`` from the built wheel and the pinned lock, ``/init``, ``/etc/comfy-init``,
the PATH links), in a private mount namespace so those paths exist only inside the test.
``/init`` then runs as PID 1 of a PID namespace rooted there, as ``ENTRYPOINT`` runs it,
against the ComfyUI stand-in.  The static tests keep the Dockerfile and layout.toml equal.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from comfy_init import env_vars
from harness.loopback import free_port, http
from harness.standin import read_records

ROOT = Path(__file__).resolve().parent.parent
LAYOUT: dict[str, Any] = tomllib.loads((ROOT / "image/layout.toml").read_text(encoding="utf-8"))
VENV = LAYOUT["venv"]

# ---- the Dockerfile, read as instructions: (stage index, KEYWORD, arguments)


def dockerfile() -> list[tuple[int, str, str]]:
    logical, pending = [], ""
    for raw in (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines():
        if not pending and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        pending += raw.rstrip().removesuffix("\\") + " "
        if not raw.rstrip().endswith("\\"):
            logical.append(pending.strip())
            pending = ""
    stage, result = -1, []
    for line in logical:
        keyword, _, args = line.partition(" ")
        stage += keyword.upper() == "FROM"
        result.append((stage, keyword.upper(), args.strip()))
    return result


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last = instructions[-1][0]
    return [(k, a) for s, k, a in instructions if s == last]


def context_copies(stage: list[tuple[str, str]]) -> dict[str, str]:
    """COPY from the build context: {path in the image: path in the repository}."""
    placed = {}
    for keyword, args in stage:
        words = shlex.split(args)
        if keyword != "COPY" or any(w.startswith("--from=") for w in words):
            continue
        *sources, dest = [w for w in words if not w.startswith("--")]
        for src in sources:
            placed[dest + Path(src).name if dest.endswith("/") else dest] = src
    return placed


def healthcheck_command() -> list[str]:
    (args,) = [a for k, a in final_stage() if k == "HEALTHCHECK"]
    command: list[str] = json.loads(args[args.index("CMD") + 3 :])
    return command


def test_dockerfile_passes_hadolint_with_no_findings() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    assert hadolint, "hadolint not found (it is in the dev extra: pip install -e '.[dev]')"
    result = subprocess.run(
        [hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_dockerfile_builds_both_stages_on_the_listed_base_image() -> None:
    instructions = dockerfile()
    assert instructions[0] == (-1, "ARG", f"BASE_IMAGE={LAYOUT['base_image']}")
    froms = [a for _, k, a in instructions if k == "FROM"]
    assert froms == ["${BASE_IMAGE} AS builder", "${BASE_IMAGE}"]


def test_dockerfile_makes_the_venv_with_the_listed_script_interpreter_path_and_lock() -> None:
    runs = [shlex.split(a) for s, k, a in dockerfile() if s == 0 and k == "RUN"]
    (build,) = [r for r in runs if r[0] == LAYOUT["build_venv"]]
    assert build[1:4] == [LAYOUT["python"], VENV, LAYOUT["lock"]]
    wheel = [r for r in runs if r[0] == LAYOUT["python"] and "wheel" in r]
    assert wheel, "the builder stage builds the wheel with the same interpreter"
    assert ("COPY", f"--from=builder {VENV} {VENV}") in final_stage()


def test_dockerfile_places_exactly_the_listed_files_and_links() -> None:
    stage = final_stage()
    assert context_copies(stage) == LAYOUT["files"]
    runs = " ".join(a for k, a in stage if k == "RUN")
    assert (
        dict((link, target) for target, link in re.findall(r"ln -s (\S+) (\S+)", runs))
        == (LAYOUT["links"])
    )
    assert all(target.startswith(VENV + "/bin/") for target in LAYOUT["links"].values())


def test_dockerfile_entrypoint_ports_and_healthcheck_are_the_listed_ones() -> None:
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == [LAYOUT["entrypoint"]]
    assert {int(p) for p in stage["EXPOSE"].split()} == set(LAYOUT["ports"].values())
    url = f"http://127.0.0.1:${{METRICS_PORT:-{LAYOUT['ports']['metrics']}}}"
    assert url + LAYOUT["healthcheck"]["path"] in " ".join(healthcheck_command())


def test_dockerignore_lets_in_exactly_the_files_the_dockerfile_copies() -> None:
    copied = set()
    for _, keyword, args in dockerfile():
        words = shlex.split(args)
        if keyword == "COPY" and not any(w.startswith("--from=") for w in words):
            copied |= {w.rstrip("/") for w in words[:-1] if not w.startswith("--")}
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    rules = [line for line in lines if line and not line.startswith("#")]
    assert rules[0] == "*"
    assert {r[1:].rstrip("/") for r in rules if r.startswith("!")} == copied
    assert all((ROOT / path).exists() for path in copied)


def test_layout_agrees_with_comfy_init_defaults_and_the_init_shebang() -> None:
    defaults = env_vars.DEFAULTS
    conf = f"{defaults['COMFY_INIT_CONFIG_DIR']}/{env_vars.WARMUP_CONFIG_NAME}"
    assert conf in LAYOUT["files"]
    assert LAYOUT["ports"] == {
        "comfyui": int(defaults["COMFYUI_PORT"]),
        "metrics": int(defaults["METRICS_PORT"]),
    }
    init = ROOT / LAYOUT["files"][LAYOUT["entrypoint"]]
    shebang = init.read_text(encoding="utf-8").splitlines()[0]
    assert re.fullmatch(rf"#!/usr/bin/env -S --block-signal=\S+ {VENV}/bin/python", shebang)
    assert os.access(init, os.X_OK), "COPY keeps the mode: /init must be executable in git"


def test_lock_pins_every_runtime_dependency_to_one_version_with_hashes() -> None:
    text = (ROOT / LAYOUT["lock"]).read_text(encoding="utf-8")
    blocks = re.findall(
        r"^([A-Za-z0-9._-]+)==(\S+) \\\n((?:    --hash=sha256:[0-9a-f]{64}.*\n)+)", text, re.M
    )
    pinned = {canonicalize_name(name): version for name, version, _ in blocks}
    assert len(pinned) == len(re.findall(r"^\S+==", text, re.M))
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    for dependency in map(Requirement, project["dependencies"]):
        version = pinned.get(canonicalize_name(dependency.name))
        assert version is not None, f"{dependency.name} is not in {LAYOUT['lock']}"
        assert dependency.specifier.contains(version), f"{dependency} but locked {version}"


# ---- the layout, built and booted


def base_python() -> str:
    """The interpreter the venv is made from: the image's ``python3.11``, here the one that
    runs the tests (the venv must not be made from another venv)."""
    beside = Path(sys.base_prefix) / "bin" / LAYOUT["python"]
    found = str(beside) if beside.exists() else shutil.which(LAYOUT["python"])
    assert found, f"{LAYOUT['python']} not found"
    return found


def run_in_mount_namespace(script: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """bash running ``script`` in a private mount namespace: its mounts vanish with it."""
    text = "set -euo pipefail\n" + "\n".join(script)
    return subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", text], **kwargs
    )


def mount_root(merged: Path, scratch: Path, layer: Path | None = None) -> list[str]:
    """Shell lines: at ``merged``, an overlay of this machine's root (under ``layer`` if
    given) with /dev; writes go to a tmpfs at ``scratch``.  Layers must not lie inside one
    another (the kernel refuses), so ``layer`` is copied onto that tmpfs first."""
    scratch.mkdir()
    merged.mkdir()
    lower = "/"
    lines = [f"mount -t tmpfs tmpfs {scratch}", f"mkdir {scratch}/data {scratch}/work"]
    if layer is not None:
        lines.append(f"cp -a {layer} {scratch}/layer")
        lower = f"{scratch}/layer:/"
    options = f"lowerdir={lower},upperdir={scratch}/data,workdir={scratch}/work"
    return [
        *lines,
        f"mount -t overlay overlay -o {options} {merged}",
        f"mount --rbind /dev {merged}/dev",
    ]


@pytest.fixture(scope="module")
def image_layer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the Dockerfile adds to the base, as an overlay layer over this machine's root."""
    tmp = tmp_path_factory.mktemp("image")
    wheel_dir = tmp / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", wheel_dir, ROOT],
        check=True,
        timeout=180,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("comfy_init-*.whl")
    merged = tmp / "root"
    q = shlex.quote
    script = [
        *mount_root(merged, tmp / "scratch"),
        f"mount -t proc proc {merged}/proc",
        f"chroot {merged} {ROOT / LAYOUT['build_venv']} {base_python()} {VENV} "
        f"{ROOT / LAYOUT['lock']} {wheel}",
    ]
    for dest, src in LAYOUT["files"].items():
        script += [
            f"mkdir -p {merged}{Path(dest).parent}",
            f"cp -p {q(str(ROOT / src))} {merged}{dest}",
        ]
    for link, target in LAYOUT["links"].items():
        script += [f"mkdir -p {merged}{Path(link).parent}", f"ln -s {target} {merged}{link}"]
    script.append(f"cp -a {tmp}/scratch/data {tmp}/layer")  # the tmpfs goes with the namespace
    proc = run_in_mount_namespace(script, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out.decode(errors="replace")
    return tmp / "layer"


class Container:
    """``/init`` as PID 1 of a PID namespace whose root is the base plus ``image_layer``.

    ``shared`` is bind-mounted at its own path so the test sees what the container writes
    there (the volume, the cache); anything else it writes stays in its own upper layer."""

    IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    def __init__(self, layer: Path, shared: Path, env: dict[str, str], args: list[str]) -> None:
        self.log = shared / "container.log"
        self.env = {"PATH": self.IMAGE_PATH, "HOME": "/root", **env}
        merged = shared / "root"
        script = [
            *mount_root(merged, shared / "scratch", layer),
            f"mount --bind {shared} {merged}{shared}",
            "exec unshare --pid --fork --kill-child --mount-proc "
            f"--root={merged} {LAYOUT['entrypoint']} {shlex.join(args)}",
        ]
        with self.log.open("wb") as log:
            self.proc = run_in_mount_namespace(
                script, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def pid1(self, timeout: float = 30) -> int:
        """Host pid of /init, PID 1 inside: the child of ``unshare --fork`` (before bash execs
        unshare, its children are the mount commands)."""
        proc = Path(f"/proc/{self.proc.pid}")
        children = proc / "task" / str(self.proc.pid) / "children"

        def found() -> list[str]:
            if self.proc.poll() is not None or (proc / "comm").read_text().strip() != "unshare":
                return []
            return children.read_text().split()

        return int(until(found, timeout, self)[0])

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Like ``docker exec``: a command in the container's namespaces and root."""
        return subprocess.run(
            [
                "nsenter",
                f"--target={self.pid1()}",
                "--mount",
                "--pid",
                "--root",
                "--wd",
                "--",
                *argv,
            ],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def stop(self) -> None:
        if self.proc.poll() is None:  # --kill-child: the namespace dies with unshare
            self.proc.kill()
        self.proc.wait(timeout=30)


def until(check: Callable[[], Any], timeout: float, container: Container) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if result := check():
                return result
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not reached within {timeout}s; container output:\n{container.output()}")


@pytest.fixture
def boot(image_layer: Path, tmp_path: Path) -> Iterator[Callable[..., Container]]:
    started: list[Container] = []

    def start(env: dict[str, str], *args: str) -> Container:
        started.append(Container(image_layer, tmp_path, env, list(args)))
        return started[-1]

    yield start
    for container in started:
        container.stop()


def _http_status(port: int, path: str) -> int:
    try:
        return http(port, path, timeout=2.0)[0]
    except ValueError:  # a plain-text answer (/healthz): only the status matters here
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2.0) as resp:
            return int(resp.status)


@pytest.mark.process
@pytest.mark.root
@pytest.mark.timeout(300)
def test_init_boots_as_pid1_in_the_image_layout_serves_comfyui_and_exits_0_on_sigterm(
    boot: Callable[..., Container],
    comfyui_dir: Path,
    make_safetensors: Callable[..., Path],
    tmp_path: Path,
) -> None:
    make_safetensors(comfyui_dir / "models/checkpoints/tiny.safetensors", 1 << 20)
    (comfyui_dir / "warmup_models.conf").write_text("checkpoints/tiny.safetensors\n")
    comfy_port, metrics_port = free_port(), free_port()
    while metrics_port == comfy_port:
        metrics_port = free_port()
    record = tmp_path / "standin.jsonl"
    container = boot(
        {
            "COMFYUI_PATH": str(comfyui_dir),
            "CACHE_PATH": str(tmp_path / "cache"),
            "COMFYUI_PORT": str(comfy_port),
            "METRICS_PORT": str(metrics_port),
            "COMFYUI_ARGS": "--listen 127.0.0.1",
            "COMFYUI_PYTHON": sys.executable,  # ComfyUI's python lives on the volume
            "STANDIN_RECORD": str(record),
        }
    )
    until(lambda: _http_status(comfy_port, "/system_stats") == 200, 120, container)
    pid1 = container.pid1()
    assert f"NSpid:\t{pid1}\t1" in Path(f"/proc/{pid1}/status").read_text().splitlines()
    # the kernel ran /init through its shebang: env, then the venv's python
    argv = Path(f"/proc/{pid1}/cmdline").read_bytes().decode().split("\0")
    assert argv[:2] == [f"{VENV}/bin/python", LAYOUT["entrypoint"]]
    paths = http(comfy_port, "/internal/folder_paths")[1]
    assert paths["checkpoints"][0] == str(tmp_path / "cache" / "checkpoints")
    assert (tmp_path / "cache/checkpoints/tiny.safetensors").stat().st_size == 1 << 20

    until(lambda: _http_status(metrics_port, LAYOUT["healthcheck"]["path"]) == 200, 60, container)
    healthcheck = container.exec(*healthcheck_command())
    assert healthcheck.returncode == 0, healthcheck.stdout + healthcheck.stderr
    # supervisord calls it RUNNING once it has lived `startsecs`
    until(
        lambda: "RUNNING" in container.exec("supervisorctl", "status", "comfyui").stdout,
        60,
        container,
    )
    version = container.exec("comfy-init", "--version")
    assert version.stdout.startswith("comfy-init "), version.stdout + version.stderr

    os.kill(pid1, signal.SIGTERM)  # docker stop
    assert container.proc.wait(timeout=30) == 0, container.output()
    stops = [
        (e["event"], e.get("signum"), e.get("code"))
        for e in read_records(record)
        if e["event"] in ("signal", "exit")
    ]
    assert stops == [("signal", signal.SIGINT, None), ("exit", None, 0)], "stopped by SIGINT"


@pytest.mark.process
@pytest.mark.root
@pytest.mark.timeout(300)
def test_init_warms_from_the_images_own_config_when_the_volume_has_none(
    boot: Callable[..., Container], comfyui_dir: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    container = boot(
        {
            "COMFYUI_PATH": str(comfyui_dir),
            "CACHE_PATH": str(tmp_path / "cache"),
            "RUN_DIR": str(run_dir),
        },
        "--warmup-only",
    )
    assert container.proc.wait(timeout=120) == 0, container.output()
    report = json.loads((run_dir / "warmup-report.json").read_text(encoding="utf-8"))
    expected = f"{env_vars.DEFAULTS['COMFY_INIT_CONFIG_DIR']}/{env_vars.WARMUP_CONFIG_NAME}"
    assert (report["config"], report["state"], report["files"]) == (expected, "done", [])
