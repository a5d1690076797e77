"""``comfy-init start`` runs for tests: a fresh configuration each, the fixture body that
starts and kills them, and what the stand-in under them recorded and answers.

Test modules use it as ``from harness import boots as h``: ``h.runner``, ``h.records``,
``h.http``, ``h.port``, and ``h.wait_for``, ``h.REPO``, ``h.PYTHON`` from the harness.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from comfy_init import env_vars
from harness import loopback
from harness.pid1 import PYTHON, REPO, Pid1
from harness.polling import wait_for
from harness.standin import read_records

__all__ = ["PYTHON", "REPO", "base_env", "clean_env", "http", "port", "records", "runner"]
__all__ += ["wait_for"]

# Variables of this machine's own environment that would change what comfy-init does.
_OURS = {v.name for v in env_vars.ENV_VARS}


def clean_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without comfy-init's or the stand-in's variables, plus
    ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in _OURS and not k.startswith("STANDIN_")}
    env.update(overrides)
    return env


def base_env(tmp_path: Path, comfyui_dir: Path, port: int) -> dict[str, str]:
    """A fresh, fast configuration: own run dir, config, cache, port; short grace; no sidecar."""
    return clean_env(
        {
            "COMFYUI_PATH": str(comfyui_dir),
            "COMFYUI_PYTHON": str(PYTHON),
            "COMFYUI_PORT": str(port),
            "COMFYUI_ARGS": "--listen 127.0.0.1",
            "COMFYUI_STOP_SECONDS": "2",
            "CACHE_PATH": str(tmp_path / "cache"),
            "RUN_DIR": str(tmp_path / "run"),
            "SUPERVISORD_CONF": str(tmp_path / "supervisord.conf"),
            "WARMUP_CONFIG": str(tmp_path / "warmup_models.conf"),
            "CACHE_RESERVE_MB": "0",
            "METRICS": "0",
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            "STANDIN_RECORD": str(tmp_path / "standin.jsonl"),
        }
    )


def records(env: dict[str, str], event: str | None = None) -> list[dict[str, Any]]:
    """The stand-in's recorded events (all of its runs), optionally of one kind."""
    found = read_records(Path(env["STANDIN_RECORD"]))
    return [r for r in found if event is None or r.get("event") == event]


def runner(tmp_path: Path, comfyui_dir: Path) -> Iterator[Callable[..., Pid1]]:
    """Body of a fixture: ``start(*args, env={...})`` runs the init; all are killed after."""
    runs: list[Pid1] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Pid1:
        full = base_env(tmp_path, comfyui_dir, loopback.free_port())
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
    """JSON answer of the stand-in run by ``run``; an HTTP error status fails."""
    status, body = loopback.http(port(run), path, method=method, timeout=timeout)
    assert status < 400, f"{method} {path} answered HTTP {status}: {body}"
    return body
