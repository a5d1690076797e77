"""PID 1's pieces: exit codes, reaping, clean spawn, who gets stopped, the stop budget.

Tests that reap or become a subreaper run in a child interpreter, so the test runner's own
children and signal state are never touched.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from comfy_init.pid1 import stop
from comfy_init.pid1.children import describe, exit_code
from comfy_init.supervisord.comfyui_keeper import Backoff

pytestmark = pytest.mark.timeout(60)


def run_script(body: str, timeout: float = 30) -> Any:
    """Run ``body`` in a fresh interpreter; it prints one JSON document as its last line."""
    script = "import json, os, signal, sys, time\n" + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_exit_code_is_the_status_or_128_plus_the_signal() -> None:
    assert exit_code(42 << 8) == 42
    assert exit_code(0) == 0
    assert exit_code(signal.SIGKILL) == 137
    assert exit_code(signal.SIGTERM) == 143
    assert describe(137) == "killed by SIGKILL"
    assert describe(3) == "exit status 3"


def test_reaper_keeps_our_childs_status_and_reaps_orphans() -> None:
    result = run_script(
        """
        from comfy_init.pid1.children import Reaper, become_subreaper, spawn
        assert become_subreaper()
        reaper = Reaper()
        # One child of ours that exits 42; its own child outlives it and is re-parented.
        pid = spawn(["/bin/sh", "-c", "sleep 0.2 & exit 42"])
        reaper.watch(pid, "sh")
        ours = []
        deadline = time.monotonic() + 10
        while (not ours or reaper.orphans_reaped < 1) and time.monotonic() < deadline:
            ours += [(e.pid, e.name, e.code) for e in reaper.reap()]
            time.sleep(0.02)
        print(json.dumps({"pid": pid, "ours": ours, "orphans": reaper.orphans_reaped}))
        """
    )
    assert result["ours"] == [[result["pid"], "sh", 42]]
    assert result["orphans"] == 1


def test_spawned_child_starts_with_default_signals_nothing_blocked_and_its_own_session(
    tmp_path: Path,
) -> None:
    seen = tmp_path / "status"
    result = run_script(
        f"""
        from comfy_init.pid1 import stop_signals
        from comfy_init.pid1.children import spawn
        stop_signals.install()                      # PID 1's handlers
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR2, signal.SIGTERM}})
        pid = spawn(["/bin/sh", "-c", "cat /proc/self/status > {seen}"])
        os.waitpid(pid, 0)
        print(json.dumps({{"pid": pid}}))
        """
    )
    fields = dict(line.split(":\t", 1) for line in seen.read_text().splitlines() if ":\t" in line)
    # glibc's posix_spawn leaves its two reserved signals (32, 33: thread cancellation and
    # setxid) ignored in the child and no program can change them; every other one is clean.
    settable = sum(1 << (s - 1) for s in signal.valid_signals())
    assert int(fields["SigBlk"], 16) == 0
    assert int(fields["SigIgn"], 16) & settable == 0
    assert int(fields["SigCgt"], 16) == 0
    assert int(fields["NSsid"]) == result["pid"]


def write_proc(root: Path, pid: int, ppid: int, state: str = "S", comm: str = "x") -> None:
    (root / str(pid)).mkdir()
    (root / str(pid) / "stat").write_text(f"{pid} ({comm}) {state} {ppid} {pid} {pid} 0 -1\n")


def test_outside_a_namespace_only_our_living_descendants_are_victims(tmp_path: Path) -> None:
    write_proc(tmp_path, 1, 0, comm="init")
    write_proc(tmp_path, 10, 1, comm="sshd")  # someone else's
    write_proc(tmp_path, 5, 1, comm="comfy-init")  # us
    write_proc(tmp_path, 50, 5, comm="supervisord")
    write_proc(tmp_path, 51, 50, comm="python) main.py (x")  # parens in comm
    write_proc(tmp_path, 52, 5, state="Z")
    write_proc(tmp_path, 60, 51)
    (tmp_path / "self").mkdir()
    assert stop.victims(5, whole_namespace=False, proc=tmp_path) == [50, 51, 60]
    assert stop.victims(5, whole_namespace=True, proc=tmp_path) == [1, 10, 50, 51, 60]


def test_leftovers_get_sigterm_and_the_stubborn_ones_sigkill_within_the_budget() -> None:
    result = run_script(
        """
        from comfy_init.pid1 import stop
        from comfy_init.pid1.children import Reaper, become_subreaper, spawn
        from comfy_init.wakeup import Wakeup
        become_subreaper()
        wakeup = Wakeup()
        reaper = Reaper()
        stubborn = "import signal, time; signal.signal(15, signal.SIG_IGN); time.sleep(60)"
        polite = spawn(["/bin/sleep", "60"])
        deaf = spawn([sys.executable, "-c", stubborn])
        # An escapee: own session, parent gone, ignores SIGTERM.
        spawn(["/bin/sh", "-c", f"setsid {sys.executable} -c '{stubborn}' & exit 0"])
        deadline = time.monotonic() + 10
        while len(stop.victims(os.getpid(), whole_namespace=False)) < 3:
            assert time.monotonic() < deadline
            reaper.reap()
            time.sleep(0.05)
        time.sleep(0.3)  # let the python ones install their SIG_IGN
        killed = stop.terminate_leftovers(reaper, wakeup, stop.budget(6))
        left = stop.victims(os.getpid(), whole_namespace=False)
        print(json.dumps({"killed": killed, "left": left}))
        """
    )
    assert result == {"killed": 2, "left": []}


def test_default_stop_budget_fits_inside_dockers_ten_seconds() -> None:
    plan = stop.budget(6)
    assert plan.supervisord == 7.5
    assert plan.total == 8.5
    assert plan.total < stop.DOCKER_GRACE_SECONDS
    assert stop.budget(1).supervisord == 7.5  # never less than the default
    assert stop.budget(20).supervisord == 21.5  # a longer ComfyUI grace grows the phase


def test_crash_loop_backoff_doubles_up_to_ten_times_the_first_delay() -> None:
    backoff = Backoff(30)
    assert [backoff.delay(n) for n in range(7)] == [30, 60, 120, 240, 300, 300, 300]
    assert backoff.cap == 300
    assert Backoff(1).delay(10_000) == 10


def test_wakeup_returns_early_when_a_signal_arrives() -> None:
    result = run_script(
        """
        import threading
        from comfy_init.pid1 import stop_signals
        from comfy_init.wakeup import Wakeup
        stop_signals.install()
        wakeup = Wakeup()
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        wakeup.wait(30)
        print(json.dumps({"pending": stop_signals.pending}))
        """
    )
    assert result == {"pending": [int(signal.SIGTERM)]}
