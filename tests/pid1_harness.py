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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from comfy_init import settings

REPO = Path(__file__).resolve().parent.parent
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


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def _status_fields(pid: int | str) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _stat(pid: int | str) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def catches_or_blocks(pid: int, signum: int) -> bool:
    """True once ``pid`` has a handler for, or blocks, ``signum`` (so a signal is kept)."""
    fields = _status_fields(pid)
    bit = 1 << (signum - 1)
    return any(int(fields.get(k, "0").strip(), 16) & bit for k in ("SigBlk", "SigCgt"))


class Pid1:
    """One ``comfy-init start`` run as PID 1 of its own PID namespace."""

    def __init__(self, workdir: Path, env: dict[str, str], args: list[str] | None = None) -> None:
        self.workdir = workdir
        self.env = env
        self.args = args or []
        self.stdout_path = workdir / "pid1.stdout"
        self.stderr_path = workdir / "pid1.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self._host_pid: int | None = None

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> Pid1:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [
                    "unshare",
                    "--pid",
                    "--fork",
                    "--mount-proc",
                    "--kill-child",
                    *init_argv(self.args),
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=self.workdir,
                start_new_session=True,
            )
        return self

    @property
    def unshare_pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def host_pid(self, timeout: float = 10) -> int:
        """PID 1's pid as seen from here."""
        if self._host_pid is None:
            path = Path(f"/proc/{self.unshare_pid}/task/{self.unshare_pid}/children")

            def child() -> int | None:
                try:
                    words = path.read_text().split()
                except FileNotFoundError:
                    return None
                return int(words[0]) if words else None

            self._host_pid = wait_for(child, timeout, "unshare to fork PID 1", step=0.001)
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
            return Path(exe).name != "unshare" and catches_or_blocks(pid, signal.SIGTERM)

        wait_for(exec_done_and_kept, timeout, "PID 1 to block or catch SIGTERM", step=0.0005)
        return pid

    def signal(self, signum: int) -> None:
        os.kill(self.host_pid(), signum)

    def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

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
                try:
                    found.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
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

        return wait_for(found, timeout, f"log event {name!r}", step=0.1)  # type: ignore[no-any-return]

    def wait_stdout(self, pattern: str, timeout: float) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            match = re.search(pattern, self.stdout(), re.M)
            if match is None:
                self._fail_if_exited(f"stdout {pattern!r}")
            return match

        return wait_for(found, timeout, f"stdout to match {pattern!r}", step=0.1)  # type: ignore[no-any-return]

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
        try:
            ns = os.readlink(f"/proc/{self.host_pid()}/ns/pid")
        except (FileNotFoundError, ProcessLookupError):
            return {}
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.readlink(entry / "ns" / "pid") != ns:
                    continue
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            nspid = _status_fields(entry.name).get("NSpid", "").split()
            if len(nspid) >= 2:
                found[int(nspid[-1])] = int(entry.name)
        return found

    def zombies(self) -> list[int]:
        """Host pids of zombie processes in the namespace."""
        return [
            host
            for host in self.namespace_pids().values()
            if (st := _stat(host)) is not None and st[0] == "Z"
        ]

    def process_group_members(self, host_pgid: int) -> list[int]:
        """Host pids (in the namespace) whose process group is ``host_pgid``."""
        return [
            host
            for host in self.namespace_pids().values()
            if (st := _stat(host)) is not None and int(st[2]) == host_pgid and st[0] != "Z"
        ]

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

        return wait_for(find, 10, "supervisord in the namespace")  # type: ignore[no-any-return]

    def supervisorctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(VENV_BIN / "supervisorctl"), "-c", self.env["SUPERVISORD_CONF"], *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


# Variables of the test machine's own environment that would change what comfy-init does.
_OURS = {v.name for v in settings.ENV_VARS}


def base_env(tmp_path: Path, comfyui_dir: Path, port: int) -> dict[str, str]:
    """A fresh, fast configuration: own run dir, config, cache, port; short grace; no sidecar."""
    env = {k: v for k, v in os.environ.items() if k not in _OURS and not k.startswith("STANDIN_")}
    env.update(
        COMFYUI_PATH=str(comfyui_dir),
        COMFYUI_PYTHON=str(PYTHON),
        COMFYUI_PORT=str(port),
        COMFYUI_ARGS="--listen 127.0.0.1",
        COMFYUI_STOP_SECONDS="2",
        CACHE_PATH=str(tmp_path / "cache"),
        RUN_DIR=str(tmp_path / "run"),
        SUPERVISORD_CONF=str(tmp_path / "supervisord.conf"),
        WARMUP_CONFIG=str(tmp_path / "warmup_models.conf"),
        CACHE_RESERVE_MB="0",
        METRICS="0",
        LOG_FORMAT="json",
        LOG_LEVEL="info",
        STANDIN_RECORD=str(tmp_path / "standin.jsonl"),
    )
    return env


def records(env: dict[str, str], event: str | None = None) -> list[dict[str, Any]]:
    """The stand-in's recorded events (all of its runs), optionally of one kind."""
    path = Path(env["STANDIN_RECORD"])
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            continue
    return [r for r in found if event is None or r.get("event") == event]


def runner(tmp_path: Path, comfyui_dir: Path) -> Iterator[Callable[..., Pid1]]:
    """Body of a fixture: ``start(*args, env={...})`` runs the init; all are killed after."""
    from comfyui_standin.harness import free_port

    runs: list[Pid1] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Pid1:
        full = base_env(tmp_path, comfyui_dir, free_port())
        full.update(env or {})
        run = Pid1(tmp_path, full, list(args))
        runs.append(run)
        return run.start()

    try:
        yield start
    finally:
        for run in runs:
            run.close()


def port(run: Pid1) -> int:
    return int(run.env["COMFYUI_PORT"])


def http(run: Pid1, method: str, path: str, timeout: float = 30) -> Any:
    """JSON answer of the stand-in run by ``run``."""
    import urllib.request

    req = urllib.request.Request(f"http://127.0.0.1:{port(run)}{path}", method=method)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read())
