"""Waiting for ComfyUI on an empty volume: reminders while main.py is missing, the hand-over
the moment it appears, a stop that ends the wait (and cancels what runs after it)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import structlog

from comfy_init.comfyui.arrival import Arrival
from harness.polling import wait_for

pytestmark = pytest.mark.timeout(30)


def test_main_py_appearing_hands_over_once_after_reminders(tmp_path: Path) -> None:
    main_py = tmp_path / "ComfyUI" / "main.py"
    arrived: list[threading.Event] = []
    with structlog.testing.capture_logs() as logs:
        arrival = Arrival(main_py, arrived.append, check_seconds=0.02, remind_seconds=0.1).start()
        wait_for(lambda: sum(e["event"] == "comfyui_missing" for e in logs) >= 2, 10, "reminders")
        assert arrived == []
        main_py.parent.mkdir()
        main_py.write_text("print('ComfyUI')\n")
        assert arrival.join(10)
    assert arrived == [arrival.cancel]
    missing = [e for e in logs if e["event"] == "comfyui_missing"]
    assert missing[0]["path"] == str(main_py)
    assert "git clone" in missing[0]["hint"]
    assert "COMFYUI_PATH" in missing[0]["hint"]
    assert [e["event"] for e in logs][-1] == "comfyui_found"


def test_a_directory_named_main_py_is_not_comfyui(tmp_path: Path) -> None:
    (tmp_path / "main.py").mkdir()
    arrived: list[threading.Event] = []
    arrival = Arrival(tmp_path / "main.py", arrived.append, check_seconds=0.02).start()
    assert not arrival.join(0.3)
    arrival.stop()
    assert arrival.join(5)
    assert arrived == []


def test_stop_ends_the_wait_and_cancels_the_start_that_runs_after_it(tmp_path: Path) -> None:
    main_py = tmp_path / "main.py"
    main_py.write_text("")
    entered = threading.Event()

    def slow_warmup(cancel: threading.Event) -> None:
        entered.set()
        assert cancel.wait(10), "never cancelled"

    arrival = Arrival(main_py, slow_warmup, check_seconds=0.02).start()
    assert entered.wait(5)
    arrival.stop()
    assert arrival.join(5)
    assert arrival.error is None


def test_a_failing_start_is_kept_and_logged(tmp_path: Path) -> None:
    main_py = tmp_path / "main.py"
    main_py.write_text("")

    def broken(_cancel: threading.Event) -> None:
        raise OSError("no space left")

    with structlog.testing.capture_logs() as logs:
        arrival = Arrival(main_py, broken).start()
        assert arrival.join(5)
    assert isinstance(arrival.error, OSError)
    assert any(e["event"] == "comfyui_start_after_arrival_failed" for e in logs)
