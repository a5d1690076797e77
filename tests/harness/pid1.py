"""Run ``/init`` (``comfy-init start``) as PID 1 of a fresh PID namespace, and look inside.

``unshare --pid --fork --mount-proc --kill-child`` makes the init PID 1 of a new namespace
and kills the namespace if ``unshare`` dies.  The init is started the way the kernel starts
it from its shebang line (``env -S --block-signal=… <python>``), with the image's
interpreter path replaced by this checkout's venv.

Signals go to PID 1's *host* pid (``/proc/<unshare>/task/<unshare>/children``): signalling
``unshare`` would not reach it.  Everything is polled with deadlines; ``close`` kills the
whole tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from harness import procfs
from harness.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
INIT = REPO / "init"
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = VENV_BIN / "python"


def init_argv(args: list[str]) -> list[str]:
    """The argv the kernel builds from ``/init``'s shebang, with the venv's interpreter."""
    first = INIT.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("#!"), "init has no shebang line"
    interpreter, _, optional = first[2:].strip().partition(" ")
    words = optional.split()
    assert words, f"no interpreter in the shebang: {first}"
    assert words[-1].endswith("python"), f"unexpected shebang: {first}"
    words[-1] = str(PYTHON)
    return [interpreter, " ".join(words), str(INIT), *args]


class Pid1:
    """One ``comfy-init start`` run as PID 1 of its own PID namespace, in ``workdir`` (its
    cwd, and where its stdout and stderr files go)."""

    def __init__(self, workdir: Path, env: dict[str, str], args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.env = env
        self.args = args or []
        self.stdout_path = workdir / "pid1.stdout"
        self.stderr_path = workdir / "pid1.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0  # time.perf_counter() just before the spawn
        self._host_pid: int | None = None

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> Pid1:
        self.workdir.mkdir(parents=True, exist_ok=True)
        unshare = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                [*unshare, *init_argv(self.args)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                start_new_session=True,
            )
        return self

    def since_start(self) -> float:
        """Seconds since the spawn."""
        return time.perf_counter() - self.started

    @property
    def unshare_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def host_pid(self, timeout: float = 10) -> int:
        """PID 1's pid as seen from here."""
        if self._host_pid is None:
            self._host_pid = wait_for(
                lambda: procfs.first_child(self.unshare_pid),
                timeout,
                "unshare to fork PID 1",
                step=0.001,
            )
        return self._host_pid

    def wait_signal_ready(self, timeout: float = 10) -> int:
        """Wait until PID 1 has exec'd ``/init`` far enough to keep a SIGTERM; return its pid.

        A PID 1 drops a signal it neither catches nor blocks.  Before the exec, the forked
        ``unshare`` child blocks TERM for a moment of its own and then unblocks it with the
        default action: a TERM sent then is lost, so that window does not count.  After the
        exec, ``env --block-signal`` blocks TERM (SigBlk) and Python's handler then catches
        it (SigCgt): from the first of the two a SIGTERM is kept.  That is the earliest
        moment a signal can be kept at all.
        """
        pid = self.host_pid(timeout)

        def exec_done_and_kept() -> bool:
            try:
                exe = os.readlink(f"/proc/{pid}/exe")
            except (FileNotFoundError, ProcessLookupError):
                return False
            return Path(exe).name != "unshare" and procfs.catches_or_blocks(pid, signal.SIGTERM)

        wait_for(exec_done_and_kept, timeout, "PID 1 to block or catch SIGTERM", step=0.0005)
        return pid

    def signal(self, signum: int) -> None:
        os.kill(self.host_pid(), signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to PID 1, then its exit status; the whole tree is killed after ``timeout``
        (the status is then the kill's).  None if it was never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, AssertionError):
                self.signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                return self.proc.wait(timeout=timeout)
        self.close()
        return self.proc.returncode

    def close(self) -> None:
        """Kill everything this run started (``--kill-child`` takes the namespace down)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        # Anything left of the namespace dies with its PID 1; wait until it has.
        wait_for(lambda: not self.namespace_pids(), 10, "the namespace to empty")

    # -- output -----------------------------------------------------------------------
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def events(self) -> list[dict[str, Any]]:
        """comfy-init's own log events (JSON lines on stderr)."""
        found = []
        for line in self.stderr().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(json.JSONDecodeError):
                    found.append(json.loads(line))
        return found

    def find_events(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == name]

    def wait_event(
        self, name: str, timeout: float, where: Callable[[dict[str, Any]], bool] | None = None
    ) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            for event in self.find_events(name):
                if where is None or where(event):
                    return event
            self._fail_if_exited(f"event {name}")
            return None

        return wait_for(found, timeout, f"log event {name!r}", step=0.1)

    def wait_stdout(self, pattern: str, timeout: float) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            match = re.search(pattern, self.stdout(), re.M)
            if match is None:
                self._fail_if_exited(f"stdout {pattern!r}")
            return match

        return wait_for(found, timeout, f"stdout to match {pattern!r}", step=0.1)

    def _fail_if_exited(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"PID 1 exited ({self.proc.returncode}) before {what}:\n"
                f"--- stdout\n{self.stdout()[-3000:]}\n--- stderr\n{self.stderr()[-3000:]}"
            )

    # -- inside the namespace ---------------------------------------------------------
    def namespace_pids(self) -> dict[int, int]:
        """{pid inside the namespace: host pid} for every process of the namespace."""
        if self.proc is None or (self._host_pid is None and self.proc.poll() is not None):
            return {}
        return procfs.namespace_members(self.host_pid())

    def zombies(self) -> list[int]:
        """Host pids of zombie processes in the namespace."""
        return [
            host
            for host in self.namespace_pids().values()
            if (st := procfs.stat_fields(host)) is not None and st[0] == "Z"
        ]

    def process_group_members(self, host_pgid: int) -> list[int]:
        """Host pids (in the namespace) whose process group is ``host_pgid``."""
        return [
            host
            for host in self.namespace_pids().values()
            if (st := procfs.stat_fields(host)) is not None
            and int(st[2]) == host_pgid
            and st[0] != "Z"
        ]

    def processes(self) -> dict[str, psutil.Process]:
        """{role: process} now: pid1, and of its descendants supervisord, comfyui, sidecar,
        warmup (those running)."""
        pid = self.host_pid()
        return {"pid1": psutil.Process(pid), **procfs.descendants_by_role(pid)}

    def supervisord_pid(self) -> int:
        """Host pid of the namespace's supervisord."""

        def find() -> int | None:
            for host in self.namespace_pids().values():
                try:
                    argv = Path(f"/proc/{host}/cmdline").read_bytes().split(b"\0")
                except (FileNotFoundError, ProcessLookupError):
                    continue
                if any(Path(a.decode(errors="replace")).name == "supervisord" for a in argv[:2]):
                    return host
            return None

        return wait_for(find, 10, "supervisord in the namespace")

    def supervisorctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", self.env["SUPERVISORD_CONF"], *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
