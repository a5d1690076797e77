"""The ComfyUI keeper's pace: fast while ComfyUI comes up, slow once it answers, at once
when it exits; restarts after a give-up keep their time whatever the pace.

The thread tests run a real ComfyUI stand-in (its HTTP answer and its pid are real) and a
scripted supervisord (``ScriptedSupervisord``, a test double of ``rpc.Client`` that answers
``getProcessInfo`` from a script and records ``startProcess``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from comfy_init.supervisord import rpc
from comfy_init.supervisord.comfyui_keeper import (
    POLL_SECONDS,
    SETTLED_SECONDS,
    Backoff,
    ComfyUIKeeper,
    next_poll,
)
from harness.polling import wait_for
from harness.standin import StandinProcess

pytestmark = pytest.mark.timeout(60)

NOW = 1000.0


# --- the pace (pure)


@pytest.mark.parametrize("state", [None, "STARTING", "BACKOFF"])
def test_a_comfyui_on_its_way_up_or_a_silent_supervisord_is_asked_about_at_the_fast_pace(
    state: str | None,
) -> None:
    assert next_poll(state, False, NOW, None) == POLL_SECONDS


def test_a_running_comfyui_is_asked_about_fast_until_it_answers_then_slowly() -> None:
    assert next_poll("RUNNING", False, NOW, None) == POLL_SECONDS
    assert next_poll("RUNNING", True, NOW, None) == SETTLED_SECONDS
    assert SETTLED_SECONDS > POLL_SECONDS


@pytest.mark.parametrize("state", ["FATAL", "STOPPED", "EXITED"])
def test_a_comfyui_down_for_good_is_asked_about_at_the_slow_pace(state: str) -> None:
    assert next_poll(state, False, NOW, None) == SETTLED_SECONDS


def test_a_restart_due_before_the_next_slow_look_keeps_its_time() -> None:
    assert next_poll("FATAL", False, NOW, NOW + 2.5, slow=30.0) == 2.5
    assert next_poll("FATAL", False, NOW, NOW + 60.0, slow=30.0) == 30.0
    assert next_poll("FATAL", False, NOW, NOW - 1.0, slow=30.0) == 0.0


# --- the thread


def process_info(state: str, pid: int = 0) -> rpc.ProcessInfo:
    return rpc.ProcessInfo(
        name="comfyui",
        group="comfyui",
        statename=state,
        pid=pid,
        start=int(time.time()) if pid else 0,
        stop=0,
        now=int(time.time()),
        exitstatus=0,
        spawnerr="",
        description="",
        stdout_logfile="",
        stderr_logfile="",
    )


class ScriptedSupervisord:
    """Answers ``get_process_info`` with ``self.answer`` (changed by the test or on
    ``start_process``) and counts the questions."""

    def __init__(self, answer: rpc.ProcessInfo, on_start: rpc.ProcessInfo | None = None) -> None:
        self.answer = answer
        self.on_start = on_start
        self.asked = 0
        self.starts = 0
        self.lock = threading.Lock()

    def get_process_info(self, name: str) -> rpc.ProcessInfo:
        assert name == "comfyui"
        with self.lock:
            self.asked += 1
            return self.answer

    def start_process(self, name: str, *, wait: bool = True) -> bool:
        assert (name, wait) == ("comfyui", False)
        with self.lock:
            self.starts += 1
            if self.on_start is not None:
                self.answer = self.on_start
        return True


@pytest.fixture
def keepers() -> Iterator[Callable[[ScriptedSupervisord, int, float], ComfyUIKeeper]]:
    started: list[ComfyUIKeeper] = []

    def start(sup: ScriptedSupervisord, port: int, backoff: float = 30.0) -> ComfyUIKeeper:
        keeper = ComfyUIKeeper(
            sup,  # type: ignore[arg-type]
            port=port,
            container_started=time.time(),
            backoff=Backoff(backoff),
            poll_seconds=0.02,
            settled_seconds=3600.0,  # a slow look never comes within a test
        )
        started.append(keeper.start())
        return keeper

    yield start
    for keeper in started:
        keeper.stop()


def test_an_answering_comfyui_that_exits_is_looked_at_again_at_once_not_at_the_slow_pace(
    standin: Callable[..., StandinProcess],
    keepers: Callable[[ScriptedSupervisord, int, float], ComfyUIKeeper],
) -> None:
    comfy = standin()
    sup = ScriptedSupervisord(process_info("RUNNING", comfy.pid))
    keeper = keepers(sup, comfy.port, 30.0)
    wait_for(lambda: keeper.ready_pid == comfy.pid, 20, "comfyui_ready")
    asked = sup.asked
    comfy.stop()  # killed: the pidfd wakes the keeper
    wait_for(lambda: sup.asked > asked, 10, "a look after the exit")
    assert keeper.gone_pid == comfy.pid
    # supervisord still says RUNNING with the old pid (it has not noticed yet): fast looks.
    wait_for(lambda: sup.asked > asked + 3, 10, "fast looks until supervisord notices")


def test_a_given_up_comfyui_is_started_after_the_backoff_and_its_readiness_seen_at_once(
    standin: Callable[..., StandinProcess],
    keepers: Callable[[ScriptedSupervisord, int, float], ComfyUIKeeper],
) -> None:
    comfy = standin()
    sup = ScriptedSupervisord(process_info("FATAL"), on_start=process_info("STARTING", comfy.pid))
    keeper = keepers(sup, comfy.port, 0.2)
    wait_for(lambda: sup.starts == 1, 10, "the restart after the backoff")
    assert keeper.give_ups == 1
    sup.answer = process_info("RUNNING", comfy.pid)
    wait_for(lambda: keeper.ready_pid == comfy.pid, 20, "comfyui_ready after the restart")


def test_stop_wakes_a_keeper_sleeping_at_the_slow_pace_and_its_thread_ends(
    standin: Callable[..., StandinProcess],
    keepers: Callable[[ScriptedSupervisord, int, float], ComfyUIKeeper],
) -> None:
    comfy = standin()
    sup = ScriptedSupervisord(process_info("RUNNING", comfy.pid))
    keeper = keepers(sup, comfy.port, 30.0)
    wait_for(lambda: keeper.ready_pid == comfy.pid, 20, "comfyui_ready")
    keeper.stop()
    wait_for(
        lambda: not [t for t in threading.enumerate() if t.name == "comfyui-keeper"],
        10,
        "the keeper thread to end",
    )
