"""``comfy-init start`` as PID 1 while it runs: ComfyUI under supervisord, output, control.

Every test runs the real ``/init`` as PID 1 of a fresh PID namespace with a real supervisord
and the ComfyUI stand-in (``tests/comfyui_standin``).
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import boots as h
from harness.pid1 import Pid1

pytestmark = [pytest.mark.process, pytest.mark.root, pytest.mark.timeout(90)]


@pytest.fixture
def start(tmp_path: Path, comfyui_dir: Path) -> Iterator[Callable[..., Pid1]]:
    yield from h.runner(tmp_path, comfyui_dir)


def ready(run: Pid1, timeout: float = 30, after: int = 0) -> dict[str, object]:
    """Wait for the ``after+1``-th ``comfyui_ready`` event and return it."""
    h.wait_for(
        lambda: len(run.find_events("comfyui_ready")) > after or run._fail_if_exited("ready"),
        timeout,
        "comfyui_ready",
        step=0.1,
    )
    return run.find_events("comfyui_ready")[after]


def stop(run: Pid1, timeout: float = 15) -> int:
    run.signal(signal.SIGTERM)
    return run.wait_exit(timeout)


def comfyui_host_pid(run: Pid1, ns_pid: int) -> int:
    return h.wait_for(lambda: run.namespace_pids().get(ns_pid), 5, f"host pid of {ns_pid}")  # type: ignore[no-any-return]


def test_comfyui_gets_its_arguments_environment_cwd_and_no_extra_fds(
    start: Callable[..., Pid1], comfyui_dir: Path
) -> None:
    run = start(
        "--",
        "--disable-auto-launch",
        env={"COMFYUI_ARGS": "--listen 127.0.0.1 --disable-metadata", "POD_NOTE": "a b%c"},
    )
    seen = ready(run)
    assert 0 < seen["seconds_since_container_start"] < 60
    [rec] = h.records(run.env, "start")
    assert seen["pid"] == rec["pid"]
    assert rec["argv"][1:] == [
        "--port",
        str(h.port(run)),
        "--extra-model-paths-config",
        str(Path(run.env["RUN_DIR"]) / "extra_model_paths.yaml"),
        "--listen",
        "127.0.0.1",
        "--disable-metadata",
        "--disable-auto-launch",
    ]
    assert Path(rec["argv"][0]).name == "main.py"
    assert rec["cwd"] == str(comfyui_dir)
    assert rec["env"]["POD_NOTE"] == "a b%c"
    assert rec["env"]["COMFYUI_PORT"] == str(h.port(run))
    assert rec["env"]["PYTHONUNBUFFERED"] == "1"
    assert rec["fds"] == [0, 1, 2]
    assert rec["sigblk"] == 0
    assert stop(run) == 0


def test_comfyui_interpreter_starts_with_default_sigpipe_and_sigxfsz(
    start: Callable[..., Pid1], tmp_path: Path
) -> None:
    # Python itself ignores SIGPIPE/SIGXFSZ at start-up, so look before it runs: a wrapper
    # interpreter records what it was started with, then execs the real one.
    seen = tmp_path / "interpreter-status.txt"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\ncat /proc/self/status > {seen}\nexec {h.PYTHON} "$@"\n')
    wrapper.chmod(0o755)
    run = start(env={"COMFYUI_PYTHON": str(wrapper)})
    ready(run)
    fields = dict(line.split(":\t", 1) for line in seen.read_text().splitlines() if ":\t" in line)
    ignored = int(fields["SigIgn"], 16)
    blocked = int(fields["SigBlk"], 16)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT):
        assert not ignored & (1 << (signum - 1)), f"{signum!r} ignored in ComfyUI's interpreter"
    assert blocked == 0
    assert stop(run) == 0


def test_each_comfyui_and_supervisord_line_reaches_stdout_once(
    start: Callable[..., Pid1],
) -> None:
    run = start()
    ready(run)
    run.wait_stdout(r"To see the GUI go to", 10)
    assert stop(run) == 0
    out = run.stdout()
    assert out.count("Starting server\n") == 1
    assert out.count(f"To see the GUI go to: http://127.0.0.1:{h.port(run)}\n") == 1
    assert out.count("Stopped server\n") == 1
    assert out.count("spawned: 'comfyui'") == 1
    assert "Illegal seek" not in out + run.stderr()
    # comfy-init's own lines are structured and on stderr, not mixed into the relay.
    assert run.find_events("supervisord_started")
    assert '"event"' not in out


def test_supervisorctl_status_tail_and_restart_give_a_new_pid_and_end_the_old_group(
    start: Callable[..., Pid1],
) -> None:
    run = start()
    ready(run)
    # Ready (answers HTTP) comes before RUNNING (up for startsecs).
    status = h.wait_for(
        lambda: (r := run.supervisorctl("status")).returncode == 0 and "RUNNING" in r.stdout and r,
        15,
        "supervisorctl status to show RUNNING",
        step=0.5,
    )
    assert status.stdout.split()[:2] == ["comfyui", "RUNNING"]
    tail = run.supervisorctl("tail", "comfyui")
    assert "Starting server" in tail.stdout
    [first] = h.records(run.env, "start")
    old_host = comfyui_host_pid(run, first["pid"])
    assert first["pgid"] == first["pid"]  # supervisord gives each program its own group

    restart = run.supervisorctl("restart", "comfyui")
    assert restart.returncode == 0, restart.stdout + restart.stderr
    second = ready(run, after=1)
    starts = h.records(run.env, "start")
    assert len(starts) == 2
    assert starts[1]["pid"] != first["pid"]
    assert second["pid"] == starts[1]["pid"]
    assert run.process_group_members(old_host) == []
    assert {"event": "signal", "signum": int(signal.SIGINT)}.items() <= next(
        r for r in h.records(run.env, "signal")
    ).items()
    assert stop(run) == 0


def test_comfyui_killed_with_sigkill_is_started_again(start: Callable[..., Pid1]) -> None:
    run = start()
    ready(run)
    [first] = h.records(run.env, "start")
    os.kill(comfyui_host_pid(run, first["pid"]), signal.SIGKILL)
    again = ready(run, after=1)
    assert again["pid"] != first["pid"]
    assert len(h.records(run.env, "start")) == 2
    assert stop(run) == 0


def test_a_burst_of_100_orphans_leaves_no_zombie(start: Callable[..., Pid1]) -> None:
    run = start()
    ready(run)
    answer = h.http(run, "POST", "/standin/orphans?n=100")
    assert len(answer["pids"]) == 100
    h.wait_for(lambda: not run.zombies(), 10, "every orphan to be reaped")
    assert stop(run) == 0
    [done] = run.find_events("exiting")
    assert done["orphans_reaped"] >= 100


def test_crash_loop_backs_off_and_keeps_restarting_with_growing_delays(
    start: Callable[..., Pid1],
) -> None:
    run = start(env={"STANDIN_EXIT_CODE": "3", "COMFYUI_RESTART_BACKOFF": "1"})
    first = run.wait_event("comfyui_gave_up", 30)
    second = run.wait_event("comfyui_gave_up", 30, where=lambda e: e["give_ups"] == 2)
    assert first["restart_in_seconds"] == 1
    assert second["restart_in_seconds"] == 2
    assert run.find_events("comfyui_restarting")
    # supervisord's own tries (1 + startretries) before each give-up, then ours again.
    assert len(h.records(run.env, "start")) >= 8
    assert "gave up: comfyui entered FATAL state" in run.stdout()
    assert stop(run) == 0


def test_control_socket_is_root_only_and_supervisord_opens_no_tcp_port(
    start: Callable[..., Pid1],
) -> None:
    run = start()
    ready(run)
    run_dir = Path(run.env["RUN_DIR"])
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((run_dir / "supervisord.sock").stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(run.env["SUPERVISORD_CONF"]).stat().st_mode) == 0o600
    supervisord = run.supervisord_pid()
    inodes = {
        os.readlink(fd)[len("socket:[") : -1]
        for fd in Path(f"/proc/{supervisord}/fd").iterdir()
        if os.readlink(fd).startswith("socket:[")
    }
    assert inodes, "supervisord has its control socket open"
    tcp_inodes = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{supervisord}/net/{table}").read_text().splitlines()[1:]:
            tcp_inodes.add(line.split()[9])
    assert inodes.isdisjoint(tcp_inodes)
    assert stop(run) == 0
