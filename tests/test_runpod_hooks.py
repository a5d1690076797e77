"""/pre_start.sh and /post_start.sh: run with bash, output to the container's, ended at the
time limit (process group, TERM then KILL), a stop signal handed back, background daemons a
hook started on purpose left running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from comfy_init.pid1.children import Reaper
from comfy_init.runpod_conventions import hooks
from comfy_init.wakeup import Wakeup
from harness.loopback import free_port
from harness.polling import wait_for
from harness.standin import StandinProcess

pytestmark = [pytest.mark.process, pytest.mark.timeout(60)]


@pytest.fixture
def loop() -> Iterator[tuple[Reaper, Wakeup]]:
    """PID 1's reaper and wake-up pipe, with a SIGCHLD handler (as ``stop_signals`` installs) so a
    child's end wakes the loop."""
    previous = signal.signal(signal.SIGCHLD, lambda *_: None)
    wakeup = Wakeup()
    yield Reaper(), wakeup
    wakeup.close()
    signal.signal(signal.SIGCHLD, previous)


def hook(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "hook.sh"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    path.chmod(0o644)  # RunPod runs hooks with bash: no exec bit needed
    return path


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def run(path: Path, loop: tuple[Reaper, Wakeup], timeout: float = 30) -> hooks.Outcome | None:
    reaper, wakeup = loop
    return hooks.run_hook(path, name="pre_start", timeout=timeout, reaper=reaper, wakeup=wakeup)


def test_a_hook_runs_with_bash_and_writes_to_the_containers_output(
    tmp_path: Path, loop: tuple[Reaper, Wakeup], capfd: pytest.CaptureFixture[str]
) -> None:
    path = hook(tmp_path, 'echo "hello from $BASH_VERSION"; echo oops >&2\n')
    outcome = run(path, loop)
    assert outcome is not None
    assert (outcome.code, outcome.timed_out, outcome.signum) == (0, False, None)
    out, err = capfd.readouterr()
    assert "hello from 5" in out
    assert "oops" in err


def test_a_failing_hook_gives_its_code_and_the_caller_goes_on(
    tmp_path: Path, loop: tuple[Reaper, Wakeup]
) -> None:
    outcome = run(hook(tmp_path, "exit 3\n"), loop)
    assert outcome is not None
    assert (outcome.code, outcome.timed_out) == (3, False)


def test_no_hook_file_means_nothing_runs(tmp_path: Path, loop: tuple[Reaper, Wakeup]) -> None:
    assert run(tmp_path / "absent.sh", loop) is None


def test_a_hook_over_its_time_limit_is_stopped_with_everything_in_its_group(
    tmp_path: Path, loop: tuple[Reaper, Wakeup]
) -> None:
    pids = tmp_path / "pids"
    path = hook(tmp_path, f"sleep 60 & echo $$ $! > {pids}\nwait\n")
    outcome = run(path, loop, timeout=1.0)
    assert outcome is not None
    assert (outcome.code, outcome.timed_out, outcome.signum) == (None, True, None)
    assert outcome.seconds >= 1.0
    shell, sleeper = map(int, pids.read_text().split())
    assert not alive(shell)
    assert not alive(sleeper), "the hook's background child went with it"


def test_a_hook_that_ignores_sigterm_is_killed_after_the_grace(
    tmp_path: Path, loop: tuple[Reaper, Wakeup]
) -> None:
    pids = tmp_path / "pids"
    path = hook(tmp_path, f"trap '' TERM\necho $$ > {pids}\nsleep 60\n")
    outcome = run(path, loop, timeout=0.5)
    assert outcome is not None
    assert outcome.timed_out
    assert outcome.seconds >= 0.5 + hooks.KILL_GRACE_SECONDS
    assert not alive(int(pids.read_text()))


def test_a_daemon_a_hook_starts_on_purpose_outlives_it(
    tmp_path: Path, loop: tuple[Reaper, Wakeup]
) -> None:
    pids = tmp_path / "pids"
    path = hook(tmp_path, f"sleep 60 >/dev/null 2>&1 &\necho $! > {pids}\nexit 0\n")
    outcome = run(path, loop)
    assert outcome is not None
    assert outcome.code == 0
    daemon = int(pids.read_text())
    try:
        assert alive(daemon)
    finally:
        os.kill(daemon, signal.SIGKILL)


def test_a_stop_signal_during_a_hook_stops_it_and_is_handed_back(tmp_path: Path) -> None:
    """In a process of its own, as PID 1 runs it: ``stop_signals`` records the signal."""
    started = tmp_path / "started"
    path = hook(tmp_path, f"echo $$ > {started}\nexec sleep 60\n")
    script = textwrap.dedent(
        f"""
        import dataclasses, json
        from pathlib import Path
        from comfy_init.pid1 import stop_signals
        stop_signals.install()
        from comfy_init.pid1.children import Reaper
        from comfy_init.wakeup import Wakeup
        from comfy_init.runpod_conventions import hooks
        outcome = hooks.run_hook(Path({str(path)!r}), name="pre_start", timeout=50,
                                 reaper=Reaper(), wakeup=Wakeup())
        print(json.dumps(dataclasses.asdict(outcome)))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: started.exists() and started.read_text().strip(), 20, "the hook")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    outcome = json.loads(out.splitlines()[-1])
    assert (outcome["signum"], outcome["code"], outcome["timed_out"]) == (15, None, False), err
    assert not alive(int(started.read_text()))


def post_start_process(path: Path, port: int) -> subprocess.Popen[str]:
    """``hooks.post_start`` in a process of its own, as supervisord runs it."""
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from comfy_init.pid1 import stop_signals
        stop_signals.install()
        from comfy_init.runpod_conventions import hooks
        sys.exit(hooks.post_start(Path({str(path)!r}), port={port}, timeout=30))
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_post_start_waits_for_comfyui_to_answer_then_runs_the_hook_and_exits_0_even_if_it_fails(
    tmp_path: Path, standin: Callable[..., StandinProcess]
) -> None:
    port = free_port()
    out = tmp_path / "stats.json"
    path = hook(tmp_path, f"curl -fsS http://127.0.0.1:{port}/system_stats > {out}\nexit 7\n")
    proc = post_start_process(path, port)
    try:
        time.sleep(1.5)  # long enough for the process to poll a silent port a few times
        assert proc.poll() is None
        assert not out.exists(), "nothing runs before ComfyUI answers"
        standin(port=port, env={"STANDIN_STARTUP_DELAY": "1"}).wait_ready()
        log, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, log
    assert json.loads(out.read_text())["system"]["comfyui_version"]
    assert "hook_failed" in log


def test_a_stop_signal_while_waiting_for_comfyui_exits_128_plus_n_without_running_the_hook(
    tmp_path: Path,
) -> None:
    ran = tmp_path / "ran"
    proc = post_start_process(hook(tmp_path, f"touch {ran}\n"), free_port())
    try:
        # the signal is recorded once stop_signals.install() has put the handler in place
        wait_for(
            lambda: int(_sigcgt(proc.pid), 16) & (1 << (signal.SIGTERM - 1)), 10, "its handler"
        )
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    assert not ran.exists()


def _sigcgt(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return line.split()[1]
    return "0"
