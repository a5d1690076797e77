"""``comfy-init metrics``: the sidecar's main loop, run by supervisord beside ComfyUI.

The stop-signal handlers are already installed by ``cli`` (``pid1.early``); the main thread
starts the sidecar and polls for a stop signal, then shuts everything down and exits 0.
"""

from __future__ import annotations

import time

from comfy_init import errors, logs
from comfy_init.metrics.sidecar import Sidecar
from comfy_init.pid1 import early
from comfy_init.settings import Settings

log = logs.get_logger("metrics")

POLL_SECONDS = 0.2


def run(settings: Settings) -> int:
    sidecar = Sidecar(settings)
    try:
        sidecar.start()
    except OSError as exc:
        raise errors.EnvironmentMissing(
            f"metrics sidecar cannot listen on {settings.metrics_addr}:{settings.metrics_port}: "
            f"{exc.strerror or exc} (set METRICS_PORT / METRICS_ADDR to a free address)"
        ) from exc
    signum = None
    try:
        while signum is None:
            signum = early.take()
            if signum is None:
                time.sleep(POLL_SECONDS)
    finally:
        sidecar.stop()
    log.info("metrics_stopped", signal=signum)
    return errors.EXIT_OK
