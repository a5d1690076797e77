"""An empty volume is not a crash loop: wait for ComfyUI to appear, then start it.

A fresh pod often has a volume with no ComfyUI yet; the user's first move is to SSH in and
clone it.  Exiting (code 4) would restart the container again and again, with no way in.
So ``comfy-init start`` runs supervisord without starting ComfyUI (SSH, JupyterLab and the
sidecar run), and this thread looks for ``$COMFYUI_PATH/main.py`` every ``CHECK_SECONDS``,
says what to do every ``REMIND_SECONDS``, and hands over to ``on_arrival`` (warm up, then
start ComfyUI) the moment the file is there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from comfy_init import logs

log = logs.get_logger("comfyui")

CHECK_SECONDS = 2.0
REMIND_SECONDS = 60.0
CLONE_HINT = "git clone https://github.com/comfyanonymous/ComfyUI"


class Arrival:
    """A thread waiting for ``main_py``; ``on_arrival(cancel)`` runs in it once it exists.

    ``stop()`` sets ``cancel`` (a warmup in ``on_arrival`` then stops early) and ends the
    wait; ``join`` waits for the thread within a time limit.
    """

    def __init__(
        self,
        main_py: Path,
        on_arrival: Callable[[threading.Event], None],
        *,
        check_seconds: float = CHECK_SECONDS,
        remind_seconds: float = REMIND_SECONDS,
    ) -> None:
        self.main_py = main_py
        self.on_arrival = on_arrival
        self.check_seconds = check_seconds
        self.remind_seconds = remind_seconds
        self.cancel = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="comfyui-arrival", daemon=True)

    def start(self) -> Arrival:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.cancel.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the thread; True if it ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        started = time.monotonic()
        remind_at = started
        while not self.main_py.is_file():
            now = time.monotonic()
            if now >= remind_at:
                self._remind(now - started)
                remind_at = now + self.remind_seconds
            if self.cancel.wait(self.check_seconds):
                return
        log.info(
            "comfyui_found",
            path=str(self.main_py),
            waited_seconds=round(time.monotonic() - started, 1),
        )
        try:
            self.on_arrival(self.cancel)
        except BaseException as exc:  # logged here: nobody joins a thread that failed
            self.error = exc
            log.exception("comfyui_start_after_arrival_failed", error=str(exc))

    def _remind(self, waited: float) -> None:
        log.warning(
            "comfyui_missing",
            path=str(self.main_py),
            waited_seconds=round(waited),
            effect="the container stays up (SSH, JupyterLab and metrics run); ComfyUI starts "
            "as soon as main.py appears",
            hint=f"put ComfyUI at {self.main_py.parent} (e.g. over SSH: {CLONE_HINT} "
            f"{self.main_py.parent}), or set COMFYUI_PATH to where it is",
        )
