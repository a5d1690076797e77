"""A rewritten config applied to a running supervisord: changed programs restarted with the
new section, new ones added (and started when autostart), the rest left running."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_init.supervisord import rpc, update
from harness.polling import wait_for

pytestmark = [pytest.mark.process, pytest.mark.timeout(60)]

HEAD = """\
[supervisord]
nodaemon=true
logfile=/dev/null
logfile_maxbytes=0
pidfile={d}/supervisord.pid
user=root

[unix_http_server]
file={d}/supervisord.sock
chmod=0700

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[program:sshd]
command=sleep 600
startsecs=0
stdout_logfile={d}/sshd.log
"""
COMFYUI = """
[program:comfyui]
command=sleep {seconds}
autostart={autostart}
startsecs=0
stdout_logfile={d}/comfyui.log
"""
WARMUP = """
[program:warmup]
command=sleep 300
startsecs=0
stdout_logfile={d}/warmup.log
"""


@pytest.fixture
def conf(tmp_path: Path) -> Iterator[tuple[Path, rpc.Client]]:
    """supervisord running a config with ComfyUI not started (as while waiting for it)."""
    path = tmp_path / "supervisord.conf"
    path.write_text(
        HEAD.format(d=tmp_path) + COMFYUI.format(d=tmp_path, seconds=500, autostart="false")
    )
    exe = Path(sys.executable).parent / "supervisord"
    proc = subprocess.Popen(
        [str(exe), "-c", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = rpc.Client(tmp_path / "supervisord.sock", timeout=5)
    try:
        wait_for(lambda: state(client, "sshd") == "RUNNING", 20, "supervisord")
        yield path, client
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def state(client: rpc.Client, name: str) -> str | None:
    try:
        return client.get_process_info(name).statename
    except (rpc.SupervisordUnavailable, rpc.RpcFault):
        return None


def test_the_rendered_again_config_starts_comfyui_and_adds_warmup_leaving_sshd_alone(
    conf: tuple[Path, rpc.Client], tmp_path: Path
) -> None:
    path, client = conf
    sshd = client.get_process_info("sshd").pid
    assert client.get_process_info("comfyui").statename == "STOPPED"
    path.write_text(
        HEAD.format(d=tmp_path)
        + COMFYUI.format(d=tmp_path, seconds=400, autostart="true")
        + WARMUP.format(d=tmp_path)
    )
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
    path.write_text(
        HEAD.format(d=tmp_path) + COMFYUI.format(d=tmp_path, seconds=300, autostart="true")
    )
    assert update.apply(client).changed == ("comfyui",)
    wait_for(lambda: state(client, "comfyui") == "RUNNING", 20, "comfyui restarted")
    assert client.get_process_info("comfyui").pid != old
    assert not Path(f"/proc/{old}").exists() or b"Z" in Path(f"/proc/{old}/stat").read_bytes()
