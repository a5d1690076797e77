"""A real supervisord for tests of the XML-RPC client and of config updates: a minimal config
(control socket only, no TCP port) with `sleep` programs, started in its own session and
killed with its programs on exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from comfy_init.supervisord import rpc
from harness.polling import wait_for

CONTROL = """\
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
"""


def sleeper(d: Path, name: str, seconds: int = 600, autostart: bool = True) -> str:
    """A ``[program:name]`` section running ``sleep seconds``, logging to ``d/name.log``."""
    return (
        f"\n[program:{name}]\ncommand=sleep {seconds}\nautostart={str(autostart).lower()}\n"
        f"startsecs=0\nstdout_logfile={d}/{name}.log\n"
    )


def state(client: rpc.Client, name: str) -> str | None:
    """The program's state name, None while supervisord does not answer for it."""
    try:
        return client.get_process_info(name).statename
    except (rpc.SupervisordUnavailable, rpc.RpcFault):
        return None


@contextmanager
def running(d: Path, programs: str, ready: str) -> Iterator[tuple[Path, rpc.Client]]:
    """supervisord on ``d/supervisord.conf`` (control sections + ``programs``), once program
    ``ready`` runs; yields the config path and a client."""
    path = d / "supervisord.conf"
    path.write_text(CONTROL.format(d=d) + programs)
    exe = Path(sys.executable).parent / "supervisord"
    proc = subprocess.Popen(
        [str(exe), "-c", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = rpc.Client(d / "supervisord.sock", timeout=5)
    try:
        wait_for(lambda: state(client, ready) == "RUNNING", 20, f"supervisord running {ready}")
        yield path, client
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
