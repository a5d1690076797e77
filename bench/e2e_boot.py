"""``comfy-init start`` as PID 1 of a fresh PID namespace, seen from the benchmark.

Started the way the image starts it: ``unshare --pid --fork --mount-proc --kill-child`` then
``env --block-signal=… <venv python> init`` (``/init``'s shebang, with this checkout's venv).
``Boot.start`` notes the moment before the spawn; every later figure is measured from it.
The processes inside are found by their command lines (PID 1, supervisord, the metrics
sidecar, ComfyUI, the background warmup).  ``stop`` sends SIGTERM to PID 1 (by its host
pid: signalling ``unshare`` would not reach it) and kills the namespace if PID 1 is not
gone within the deadline.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import psutil

from comfy_init import settings

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
INIT = REPO / "init"
BLOCKED = "--block-signal=HUP,INT,QUIT,TERM,CHLD"
T = TypeVar("T")


class BootError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], T | None], timeout: float, what: str, step: float = 0.02) -> T:
    """Poll ``check`` until it returns something other than None; BootError after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > end:
            raise BootError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)


def http(port: int, path: str, method: str = "GET", timeout: float = 5.0) -> tuple[int, Any]:
    """(status, decoded JSON or text) of one request to 127.0.0.1:port."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    if resp_is_json(body):
        return status, json.loads(body)
    return status, body.decode(errors="replace")


def resp_is_json(body: bytes) -> bool:
    return body[:1] in (b"{", b"[")


def boot_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any comfy-init variable, plus ``overrides``."""
    ours = {v.name for v in settings.ENV_VARS}
    env = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith("STANDIN_")}
    env.update(overrides)
    return env


class Boot:
    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.env = dict(env)
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = 0.0  # perf_counter just before the spawn
        self._pid1: int | None = None

    @property
    def comfyui_port(self) -> int:
        return int(self.env["COMFYUI_PORT"])

    @property
    def metrics_port(self) -> int:
        return int(self.env["METRICS_PORT"])

    def since_start(self) -> float:
        return time.perf_counter() - self.started

    def start(self) -> Boot:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"]
        argv += ["env", BLOCKED, str(PYTHON), str(INIT)]
        with open(self.log_dir / "pid1.out", "ab") as out:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(
                argv,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            tail = (self.log_dir / "pid1.out").read_text(errors="replace")[-3000:]
            raise BootError(f"comfy-init start exited {self.proc.returncode}:\n{tail}")

    def wait_ready(self, timeout: float) -> float:
        """Seconds from the spawn until ComfyUI answers ``GET /system_stats``."""

        def answered() -> float | None:
            self._check_alive()
            with contextlib.suppress(OSError):
                if http(self.comfyui_port, "/system_stats", timeout=1.0)[0] == 200:
                    return self.since_start()
            return None

        return wait_for(answered, timeout, "ComfyUI to answer /system_stats", step=0.01)

    def pid1(self) -> int:
        """PID 1's host pid."""
        if self._pid1 is None:
            assert self.proc is not None
            path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")

            def child() -> int | None:
                with contextlib.suppress(FileNotFoundError):
                    words = path.read_text().split()
                    return int(words[0]) if words else None
                return None

            self._pid1 = wait_for(child, 10, "unshare to fork PID 1", step=0.001)
        return self._pid1

    def processes(self) -> dict[str, psutil.Process]:
        """{role: process} for PID 1 and its descendants now: pid1, supervisord, sidecar,
        comfyui, warmup."""
        root = psutil.Process(self.pid1())
        found = {"pid1": root}
        for proc in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                role = _role(proc.cmdline())
                if role is not None:
                    found.setdefault(role, proc)
        return found

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM to PID 1, then the namespace's exit status; kill it all after ``timeout``."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, BootError):
                os.kill(self.pid1(), signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


def _role(argv: list[str]) -> str | None:
    names = [Path(a).name for a in argv[:4]]
    if "supervisord" in names:
        return "supervisord"
    if "main.py" in names:
        return "comfyui"
    if "comfy_init" in argv:
        for role, word in (("sidecar", "metrics"), ("warmup", "warmup")):
            if word in argv[argv.index("comfy_init") :]:
                return role
    return None
