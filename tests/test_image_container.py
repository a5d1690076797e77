"""The image, built from the Dockerfile with podman and booted as a container.

What a user of the image does from outside: ``podman run`` with the volume at /workspace
(the ComfyUI stand-in as ComfyUI), then ``exec supervisorctl``, ``exec comfy-init``, the
image's HEALTHCHECK, ``/metrics`` from inside, and ``podman stop``.  The base image is a
local bookworm (``image/make-base``), cached between runs; see ``harness.podman``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comfyui_standin.safetensors_file import make_safetensors
from harness import podman
from harness.polling import wait_for
from harness.standin import make_comfyui_dir, read_records

pytestmark = [pytest.mark.process, pytest.mark.root]

MODEL = "checkpoints/tiny.safetensors"
# The image's size over its base, in bytes: comfy-init's venv and its few files.
MAX_ADDED_BYTES = 40 * 1000 * 1000


@pytest.fixture(scope="session")
def built() -> tuple[str, str]:
    """(image, base): the Dockerfile built on the local base."""
    podman.require_podman()
    base = podman.make_base()
    return podman.build(base), base


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """The network volume: ComfyUI (the stand-in) with one model listed for warmup."""
    volume = tmp_path / "workspace"
    comfyui = make_comfyui_dir(volume / "ComfyUI")
    make_safetensors(comfyui / "models" / MODEL, 1 << 20)
    (comfyui / "warmup_models.conf").write_text(f"{MODEL}\n", encoding="utf-8")
    return volume


@pytest.fixture
def container(built: tuple[str, str], workspace: Path) -> Iterator[Callable[..., podman.Container]]:
    """Factory: ``container(env={...}, volumes={...})`` runs the image with the workspace at
    /workspace; every container started is removed at teardown."""
    started: list[podman.Container] = []

    def start(
        env: dict[str, str] | None = None,
        volumes: dict[Path, str] | None = None,
        workspace_dir: Path = workspace,
    ) -> podman.Container:
        started.append(
            podman.run(
                built[0],
                env={"STANDIN_RECORD": "/workspace/standin.jsonl", **(env or {})},
                volumes={workspace_dir: "/workspace", **(volumes or {})},
            )
        )
        return started[-1]

    yield start
    for each in started:
        each.remove()


@pytest.mark.timeout(600)
def test_image_serves_comfyui_answers_exec_health_and_metrics_and_stops_with_exit_0(
    container: Callable[..., podman.Container], workspace: Path
) -> None:
    pod = container()
    pod.wait_exec(["supervisorctl", "status", "comfyui"], "RUNNING")

    # the warmup ran before ComfyUI: the model is in the cache, ComfyUI looks there first
    status = pod.exec("comfy-init", "warmup", "--status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    cached = {(m["type"], m["name"], m["state"]) for m in json.loads(status.stdout)["files"]}
    assert ("checkpoints", "tiny.safetensors", "cached") in cached, status.stdout
    paths = pod.exec("curl", "-fsS", "http://127.0.0.1:8188/internal/folder_paths")
    assert json.loads(paths.stdout)["checkpoints"][0] == "/root/fast_cache/checkpoints"

    first = pod.exec("supervisorctl", "pid", "comfyui").stdout.strip()
    restart = pod.exec("supervisorctl", "restart", "comfyui", timeout=60)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    second = pod.exec("supervisorctl", "pid", "comfyui").stdout.strip()
    assert first.isdigit()
    assert second.isdigit()
    assert first != second

    pod.wait_exec(["curl", "-fsS", "http://127.0.0.1:9188/healthz"], "ok")
    health = podman.podman("healthcheck", "run", pod.name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr
    metrics = pod.wait_exec(
        ["curl", "-fsS", "http://127.0.0.1:9188/metrics"], "comfyinit_comfyui_http_up 1.0"
    )
    assert 'comfyinit_warmup_files{outcome="copied",type="checkpoints"} 1.0' in metrics

    code, _ = pod.stop(10)  # SIGKILL after 10 s would make it 137
    assert code == 0, pod.logs()
    events = read_records(workspace / "standin.jsonl")
    starts = [e["pid"] for e in events if e["event"] == "start"]
    assert len(starts) == 2, "started once, then once more by the restart"
    assert [e["signum"] for e in events if e["event"] == "signal"] == [2, 2], "SIGINT each time"


def test_image_adds_little_to_its_base(
    built: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    image, base = built
    added = podman.image_size(image) - podman.image_size(base)
    with capsys.disabled():
        print(f"\nimage size over its base: {added / 1e6:.1f} MB ({image} on {base})")
    assert 0 < added < MAX_ADDED_BYTES


@pytest.mark.timeout(600)
def test_runpod_conventions_ssh_with_the_pods_environment_jupyter_and_both_hooks(
    container: Callable[..., podman.Container], tmp_path: Path, workspace: Path
) -> None:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", keys / "id", "-C", "me@laptop"],
        check=True,
        timeout=30,
    )
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "pre_start.sh").write_text("echo pre-start-ran; date +%s.%N > /workspace/pre\n")
    (hooks / "post_start.sh").write_text(
        "curl -fsS http://127.0.0.1:8188/system_stats > /workspace/post.json\necho post-start-ran\n"
    )
    pod = container(
        env={"PUBLIC_KEY": (keys / "id.pub").read_text(), "CACHE_PATH": "/root/nvme"},
        volumes={
            keys: "/keys:ro",
            hooks / "pre_start.sh": "/pre_start.sh:ro",
            hooks / "post_start.sh": "/post_start.sh:ro",
        },
    )
    pod.wait_exec(["supervisorctl", "status", "sshd"], "RUNNING")
    mode = pod.exec("stat", "-c", "%a", "/root/.ssh/authorized_keys")
    assert mode.stdout.strip() == "600"
    assert pod.exec("cat", "/root/.ssh/authorized_keys").stdout == (keys / "id.pub").read_text()
    assert pod.exec("test", "-f", "/etc/ssh/ssh_host_ed25519_key").returncode == 0

    # a user's `ssh pod comfy-init warmup --status`: the pod's CACHE_PATH, not the default
    pod.wait_exec(["supervisorctl", "status", "comfyui"], "RUNNING")
    over_ssh = pod.exec(
        "ssh", "-i", "/keys/id", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
        "-o", "UserKnownHostsFile=/dev/null", "root@127.0.0.1",
        "comfy-init warmup --status --json",
    )  # fmt: skip
    assert over_ssh.returncode == 0, over_ssh.stdout + over_ssh.stderr + pod.logs()
    status = json.loads(over_ssh.stdout)
    assert status["cache_path"] == "/root/nvme"
    assert status["counts"]["cached"] == 1

    # /pre_start.sh ran before the warmup; /post_start.sh once ComfyUI answered
    pod.wait_exec(["cat", "/workspace/post.json"], "comfyui_version")
    log = pod.logs()
    assert "pre-start-ran" in log
    assert "post-start-ran" in log
    assert log.index("pre-start-ran") < log.index('"warmup_started"')
    assert (workspace / "pre").exists()
    code, _ = pod.stop(10)
    assert code == 0, pod.logs()


@pytest.mark.timeout(600)
def test_an_empty_volume_keeps_the_pod_up_healthy_not_ready_until_comfyui_is_copied_in(
    container: Callable[..., podman.Container], tmp_path: Path, workspace: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    pod = container(workspace_dir=empty)
    pod.wait_exec(["cat", "/proc/1/cmdline"], "init")
    wait_for(lambda: "comfyui_missing" in pod.logs(), 60, "the missing ComfyUI to be said")
    pod.wait_exec(["curl", "-sS", "http://127.0.0.1:9188/readyz"], "ComfyUI not installed")
    health = podman.podman("healthcheck", "run", pod.name, check=False)
    assert health.returncode == 0, health.stdout + health.stderr + pod.logs()
    assert "STOPPED" in pod.exec("supervisorctl", "status", "comfyui").stdout
    assert pod.running()

    shutil.copytree(workspace / "ComfyUI", empty / "ComfyUI")  # the user syncs ComfyUI in
    pod.wait_exec(["supervisorctl", "status", "comfyui"], "RUNNING", timeout=120)
    pod.wait_exec(["curl", "-sS", "http://127.0.0.1:9188/readyz"], "ok")
    assert Path(empty / "standin.jsonl").exists()
    code, _ = pod.stop(10)
    assert code == 0, pod.logs()
