"""The watchdog's decision: restart only a RUNNING ComfyUI, after the grace period, after
enough failed probes in a row, and not while a job runs unless the silence is too long."""

from __future__ import annotations

import pytest

from comfy_init import settings
from comfy_init.sidecar.hang_watchdog import HangWatch, Policy
from comfy_init.supervisord.rpc import ProcessInfo

POLICY = Policy(enabled=True, failures=3, grace=60.0, busy_limit=600.0)
START = 10_000


def info(statename: str = "RUNNING", start: int = START) -> ProcessInfo:
    return ProcessInfo("comfyui", "comfyui", statename, 7, start, 0, start, 0, "", "", "", "")


def run(hang: HangWatch, probes: list[tuple[float, bool, int | None]], proc: ProcessInfo) -> str:
    """Feed ``(seconds after start, answered, running jobs)`` probes; the last decision."""
    reason = ""
    for offset, ok, running in probes:
        now = START + offset
        hang.observe(proc, ok, running, now)
        decision = hang.decide(POLICY, proc, now)
        reason = decision.reason
        assert decision.restart == (reason == "hung")
    return reason


def test_hung_comfyui_is_restarted_after_the_configured_consecutive_failures() -> None:
    watch = HangWatch()
    probes = [(100, True, 0), (110, False, None), (120, False, None)]
    assert run(watch, probes, info()) == "answering"
    assert run(watch, [(130, False, None)], info()) == "hung"


def test_one_answer_resets_the_count_of_failures() -> None:
    watch = HangWatch()
    probes = [(100, False, None), (110, False, None), (120, True, 0), (130, False, None)]
    assert run(watch, probes, info()) == "answering"
    assert watch.failed_probes == 1


def test_no_restart_during_the_grace_period_after_a_start() -> None:
    watch = HangWatch()
    probes = [(t, False, None) for t in (10, 20, 30, 40, 50)]
    assert run(watch, probes, info()) == "grace"
    # once the grace is over, a ComfyUI that never answered is judged at once
    assert run(watch, [(61, False, None)], info()) == "hung"


def test_a_running_job_holds_the_watchdog_back_until_the_busy_limit() -> None:
    watch = HangWatch()
    probes = [(100, True, 1), *[(100 + 10 * i, False, None) for i in range(1, 6)]]
    assert run(watch, probes, info()) == "busy"
    assert run(watch, [(100 + 599, False, None)], info()) == "busy"
    assert run(watch, [(100 + 600, False, None)], info()) == "hung"


def test_an_idle_queue_does_not_hold_the_watchdog_back() -> None:
    watch = HangWatch()
    probes = [(100, True, 1), (105, True, 0), (110, False, None), (120, False, None)]
    assert run(watch, probes, info()) == "answering"
    assert run(watch, [(130, False, None)], info()) == "hung"


@pytest.mark.parametrize("state", ["STARTING", "BACKOFF", "STOPPED", "EXITED", "FATAL"])
def test_a_process_that_is_not_running_is_never_restarted_by_the_watchdog(state: str) -> None:
    watch = HangWatch()
    probes = [(100 + i, False, None) for i in range(10)]
    assert run(watch, probes, info(state)) == "not_running"
    assert watch.failed_probes == 0


def test_supervisord_unreachable_means_no_restart() -> None:
    watch = HangWatch()
    watch.observe(None, False, None, START + 100)
    assert watch.decide(POLICY, None, START + 100).reason == "not_running"


def test_a_new_process_starts_with_a_clean_slate() -> None:
    watch = HangWatch()
    run(watch, [(100, True, 1), (110, False, None), (120, False, None)], info())
    fresh = info(start=START + 200)
    watch.observe(fresh, False, None, START + 300)
    assert watch.failed_probes == 1
    assert watch.last_running_jobs == 0
    assert watch.last_ok_at is None


def test_watchdog_off_never_restarts() -> None:
    off = Policy(enabled=False, failures=1, grace=0, busy_limit=0)
    watch = HangWatch()
    for t in range(5):
        watch.observe(info(), False, None, START + 1000 + t)
    assert watch.decide(off, info(), START + 1010).reason == "disabled"


def test_policy_comes_from_the_watchdog_variables() -> None:
    conf = settings.from_env(
        {
            "WATCHDOG": "0",
            "WATCHDOG_FAILURES": "4",
            "WATCHDOG_GRACE": "30",
            "WATCHDOG_BUSY_LIMIT": "90",
        }
    )
    assert Policy.of(conf) == Policy(enabled=False, failures=4, grace=30.0, busy_limit=90.0)


def test_restarted_counts_and_forgets_the_failures() -> None:
    watch = HangWatch()
    run(watch, [(100, False, None), (110, False, None), (120, False, None)], info())
    watch.restarted()
    assert (watch.restarts, watch.failed_probes) == (1, 0)
