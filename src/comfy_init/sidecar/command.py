"""``comfy-init metrics``: the sidecar's main loop, run by supervisord beside ComfyUI.

The stop-signal handlers are already installed by ``cli`` (``pid1.stop_signals``); the main
thread starts the sidecar and sleeps on the signal wake-up pipe (``wakeup.Wakeup``) until a stop
signal arrives, then shuts everything down and exits 0.
"""

from __future__ import annotations

import os

from comfy_init import errors, logs
from comfy_init.pid1 import stop_signals
from comfy_init.settings import Settings
from comfy_init.sidecar.wiring import Sidecar
from comfy_init.usage import journal
from comfy_init.wakeup import Wakeup

log = logs.get_logger("metrics")

IDLE_SECONDS = 60.0  # a safety net only: a signal wakes the main thread at once


def run(settings: Settings) -> int:
    sidecar = Sidecar(settings, pod=journal.pod_name(os.environ))
    try:
        sidecar.start()
    except OSError as exc:
        raise errors.EnvironmentMissing(
            f"metrics sidecar cannot listen on {settings.metrics_addr}:{settings.metrics_port}: "
            f"{exc.strerror or exc} (set METRICS_PORT / METRICS_ADDR to a free address)"
        ) from exc
    signum = None
    wakeup: Wakeup | None = None
    try:
        wakeup = Wakeup()  # a signal from now on wakes wait(); earlier ones wait in take()
        while (signum := stop_signals.take()) is None:
            wakeup.wait(IDLE_SECONDS)
    finally:
        sidecar.stop()
        if wakeup is not None:
            wakeup.close()
    log.info("metrics_stopped", signal=signum)
    return errors.EXIT_OK
