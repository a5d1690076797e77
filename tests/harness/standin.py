"""The ComfyUI stand-in (``tests/comfyui_standin/``) from the outside: a fake install, its
record file, and ``StandinProcess`` to run it directly (not under comfy-init).

Only ``STANDIN_FILES`` are copied into a fake install; this module stays outside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from comfyui_standin.folder_paths import MODEL_DIR_NAMES
from harness.loopback import free_port, http
from harness.polling import wait_for

STANDIN_DIR = Path(__file__).resolve().parent.parent / "comfyui_standin"
STANDIN_FILES = (
    "main.py",
    "folder_paths.py",
    "recorder.py",
    "safetensors_file.py",
    "stray_processes.py",
)


def make_comfyui_dir(root: Path) -> Path:
    """A fake ComfyUI install at ``root``: the stand-in's files and empty ``models/<type>``."""
    root.mkdir(parents=True, exist_ok=True)
    for name in STANDIN_FILES:
        shutil.copy2(STANDIN_DIR / name, root / name)
    for name in MODEL_DIR_NAMES:
        (root / "models" / name).mkdir(parents=True, exist_ok=True)
    return root


def read_records(path: Path) -> list[dict[str, Any]]:
    """Events of a STANDIN_RECORD file, oldest first ([] when it does not exist yet); a line
    still being written is left out."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            found.append(json.loads(line))
    return found


class StandinProcess:
    """The stand-in run as ``python main.py --port P ARGS…`` in ``comfyui_dir``, in its own
    process group; stdout/stderr go to files, events to ``record``."""

    def __init__(
        self,
        comfyui_dir: Path,
        *args: str,
        port: int | None = None,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
        work_dir: Path | None = None,
        popen: dict[str, Any] | None = None,
    ) -> None:
        self.comfyui_dir = comfyui_dir
        self.port = port if port is not None else free_port()
        self.work_dir = work_dir if work_dir is not None else comfyui_dir.parent
        self.record = self.work_dir / f"standin-{self.port}.jsonl"
        self.stdout_path = self.work_dir / f"standin-{self.port}.stdout"
        self.stderr_path = self.work_dir / f"standin-{self.port}.stderr"
        self.argv = [python, "main.py", "--port", str(self.port), *args]
        self.env = {**os.environ, "STANDIN_RECORD": str(self.record), **(env or {})}
        self.popen = popen or {}  # extra Popen arguments, e.g. pass_fds, preexec_fn
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> StandinProcess:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.comfyui_dir,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                **self.popen,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None, "StandinProcess.start() was not called"
        return self.proc.pid

    def output(self) -> str:
        return self.stdout_path.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def records(self) -> list[dict[str, Any]]:
        return read_records(self.record)

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, Any]:
        return http(self.port, path, timeout=timeout)

    def post(self, path: str, timeout: float = 30.0) -> tuple[int, Any]:
        return http(self.port, path, method="POST", timeout=timeout)

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Poll GET /system_stats until it answers; raise if the process exits or time runs out."""
        proc = self.proc
        assert proc is not None, "StandinProcess.start() was not called"

        def answers() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"stand-in exited with {proc.returncode} before it was ready:\n"
                    f"{self.output()}\n{self.errors()}"
                )
            with contextlib.suppress(OSError):
                return self.get("/system_stats", timeout=1.0)[0] == 200
            return False

        wait_for(answers, timeout, f"the stand-in on port {self.port} to answer")

    def wait(self, timeout: float = 20.0) -> int:
        assert self.proc is not None, "StandinProcess.start() was not called"
        return self.proc.wait(timeout)

    def send_signal(self, signum: int) -> None:
        assert self.proc is not None, "StandinProcess.start() was not called"
        self.proc.send_signal(signum)

    def stop(self) -> None:
        """Kill the process group and any escaped grandchild it reported; reap the stand-in."""
        for event in self.records():
            if event.get("event") == "escape":
                with contextlib.suppress(ProcessLookupError):
                    os.kill(event["pid"], signal.SIGKILL)
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def __enter__(self) -> StandinProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
