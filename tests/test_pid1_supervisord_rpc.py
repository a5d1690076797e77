"""The XML-RPC client against a real supervisord on a unix socket."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from comfy_init.supervisord import rpc
from harness.supervisord import running, sleeper

pytestmark = [pytest.mark.process, pytest.mark.timeout(60)]


@pytest.fixture
def supervisord(tmp_path: Path) -> Iterator[rpc.Client]:
    with running(tmp_path, sleeper(tmp_path, "sleeper"), "sleeper") as (_conf, client):
        yield client


def test_process_info_reports_running_program_with_its_pid(supervisord: rpc.Client) -> None:
    info = supervisord.get_process_info("sleeper")
    assert info.statename == "RUNNING"
    assert info.pid > 0
    assert Path(f"/proc/{info.pid}/cmdline").read_bytes().split(b"\0")[:2] == [b"sleep", b"600"]
    assert supervisord.call("supervisor.getState")["statename"] == "RUNNING"


def test_stop_then_start_gives_a_new_pid(supervisord: rpc.Client) -> None:
    old = supervisord.get_process_info("sleeper").pid
    assert supervisord.stop_process("sleeper", timeout=15)
    stopped = supervisord.get_process_info("sleeper")
    assert stopped.statename == "STOPPED"
    assert stopped.pid == 0
    assert supervisord.start_process("sleeper", timeout=15)
    new = supervisord.get_process_info("sleeper").pid
    assert new not in (0, old)


def test_unknown_program_raises_fault_named_bad_name(supervisord: rpc.Client) -> None:
    with pytest.raises(rpc.RpcFault) as err:
        supervisord.get_process_info("nope")
    assert err.value.fault_name == "BAD_NAME"
    assert "nope" in str(err.value)


def test_starting_a_running_program_raises_already_started(supervisord: rpc.Client) -> None:
    with pytest.raises(rpc.RpcFault) as err:
        supervisord.start_process("sleeper")
    assert err.value.fault_name == "ALREADY_STARTED"


def test_missing_socket_raises_unavailable_naming_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "absent.sock"
    with pytest.raises(rpc.SupervisordUnavailable, match=r"absent\.sock"):
        rpc.Client(sock, timeout=1).call("supervisor.getState")


def test_silent_peer_raises_unavailable_after_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "silent.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    try:
        with pytest.raises(rpc.SupervisordUnavailable, match="timed out"):
            rpc.Client(path, timeout=0.3).call("supervisor.getState")
    finally:
        server.close()


def test_peer_that_answers_garbage_raises_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    server.settimeout(5)

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(65536)
            body = b"<not-xml-rpc"
            conn.sendall(
                b"HTTP/1.0 200 OK\r\nContent-Type: text/xml\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )

    t = threading.Thread(target=answer)
    t.start()
    try:
        with pytest.raises(rpc.SupervisordUnavailable):
            rpc.Client(path, timeout=2).call("supervisor.getState")
    finally:
        t.join(5)
        server.close()
