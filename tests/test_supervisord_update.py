"""A rewritten config applied to a running supervisord: changed programs restarted with the
new section, new ones added (and started when autostart), the rest left running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_init.supervisord import rpc, update
from harness.polling import wait_for
from harness.supervisord import CONTROL, running, sleeper, state

pytestmark = [pytest.mark.process, pytest.mark.timeout(60)]


def programs(d: Path, comfyui_seconds: int, comfyui_autostart: bool, warmup: bool = False) -> str:
    """sshd (always), comfyui, and the background warmup when asked for."""
    text = sleeper(d, "sshd") + sleeper(d, "comfyui", comfyui_seconds, comfyui_autostart)
    return text + (sleeper(d, "warmup", 300) if warmup else "")


@pytest.fixture
def conf(tmp_path: Path) -> Iterator[tuple[Path, rpc.Client]]:
    """supervisord running a config with ComfyUI not started (as while waiting for it)."""
    with running(tmp_path, programs(tmp_path, 500, comfyui_autostart=False), "sshd") as started:
        yield started


def test_the_rendered_again_config_starts_comfyui_and_adds_warmup_leaving_sshd_alone(
    conf: tuple[Path, rpc.Client], tmp_path: Path
) -> None:
    path, client = conf
    sshd = client.get_process_info("sshd").pid
    assert client.get_process_info("comfyui").statename == "STOPPED"
    path.write_text(CONTROL.format(d=tmp_path) + programs(tmp_path, 400, True, warmup=True))
    changes = update.apply(client)
    assert changes == update.Changes(added=("warmup",), changed=("comfyui",), removed=())
    wait_for(lambda: state(client, "comfyui") == "RUNNING", 20, "comfyui started")
    wait_for(lambda: state(client, "warmup") == "RUNNING", 20, "warmup started")
    comfyui = client.get_process_info("comfyui").pid
    assert Path(f"/proc/{comfyui}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"400"]
    assert client.get_process_info("sshd").pid == sshd, "an unchanged program keeps running"
    assert update.apply(client) == update.Changes((), (), ()), "nothing more to do"


def test_a_running_program_whose_section_changed_is_restarted_with_the_new_one(
    conf: tuple[Path, rpc.Client], tmp_path: Path
) -> None:
    path, client = conf
    client.start_process("comfyui")
    old = client.get_process_info("comfyui").pid
    path.write_text(CONTROL.format(d=tmp_path) + programs(tmp_path, 300, True))
    assert update.apply(client).changed == ("comfyui",)
    wait_for(lambda: state(client, "comfyui") == "RUNNING", 20, "comfyui restarted")
    assert client.get_process_info("comfyui").pid != old
    assert not Path(f"/proc/{old}").exists() or b"Z" in Path(f"/proc/{old}/stat").read_bytes()
