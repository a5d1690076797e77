"""Stop signals to ``comfy-init start`` as PID 1: at any moment, bounded, with the right code.

Exit codes: 128+N when the signal came before supervisord started (warmup, start-up),
0 after a stop of a running supervisord.  Every run must leave no process behind.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness import boots as h
from harness.loopback import free_port
from harness.pid1 import Pid1

pytestmark = [pytest.mark.process, pytest.mark.root, pytest.mark.timeout(90)]

MIB = 1024 * 1024


@pytest.fixture
def start(tmp_path: Path, comfyui_dir: Path) -> Iterator[Callable[..., Pid1]]:
    yield from h.runner(tmp_path, comfyui_dir)


@pytest.fixture
def models(
    tmp_path: Path, comfyui_dir: Path, make_safetensors: Callable[..., Path]
) -> Callable[[int, int], Path]:
    """``models(count, size)``: checkpoints on the "volume" and a warmup config naming them."""

    def make(count: int, size: int) -> Path:
        names = []
        for i in range(count):
            name = f"model-{i}.safetensors"
            make_safetensors(comfyui_dir / "models" / "checkpoints" / name, size)
            names.append(f"checkpoints/{name}")
        config = tmp_path / "warmup_models.conf"
        config.write_text("\n".join(names) + "\n")
        return config

    return make


def partials(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.name.endswith(".comfy-init-partial")]


def assert_nothing_left(run: Pid1) -> None:
    assert run.namespace_pids() == {}, "processes outlived PID 1"


def test_sigterm_in_the_first_milliseconds_is_kept_and_exits_143(
    start: Callable[..., Pid1],
) -> None:
    run = start(env={"SKIP_WARMUP": "1"})
    # The earliest a signal can be kept: see Pid1.wait_signal_ready.
    run.wait_signal_ready()
    run.signal(signal.SIGTERM)
    assert run.wait_exit(10) == 143
    assert_nothing_left(run)
    assert h.records(run.env, "start") == []
    assert run.find_events("interrupted")[0]["signal"] == "SIGTERM"


@pytest.mark.parametrize(
    ("low", "high"), [(0.0, 0.02), (0.02, 0.3), (0.3, 1.0), (1.0, 2.0), (2.0, 4.0)]
)
def test_sigterm_at_a_random_moment_exits_in_bounds_with_the_code_of_the_phase(
    start: Callable[..., Pid1],
    models: Callable[[int, int], Path],
    tmp_path: Path,
    low: float,
    high: float,
) -> None:
    models(2, 4 * MIB)
    run = start(env={"WARMUP_MAX_MBPS": "4"})  # the warmup takes about 2 s
    delay = random.uniform(low, high)  # noqa: S311 - a moment, not a secret
    run.wait_signal_ready()
    time.sleep(delay)
    run.signal(signal.SIGTERM)
    code = run.wait_exit(10)
    supervised = bool(run.find_events("supervisord_started"))
    assert code == (0 if supervised else 143), f"delay {delay:.3f} s, stderr:\n{run.stderr()}"
    assert partials(tmp_path / "cache") == [], f"delay {delay:.3f} s"
    assert_nothing_left(run)


def test_sigterm_during_warmup_removes_partial_file_and_exits_143(
    start: Callable[..., Pid1], models: Callable[[int, int], Path], tmp_path: Path
) -> None:
    models(2, 48 * MIB)
    run = start(env={"WARMUP_MAX_MBPS": "16", "WARMUP_CHUNK_MB": "4"})
    cache = tmp_path / "cache"
    h.wait_for(lambda: partials(cache), 20, "a copy in progress", step=0.02)
    run.signal(signal.SIGTERM)
    assert run.wait_exit(10) == 143
    assert partials(cache) == []
    assert h.records(run.env, "start") == [], "ComfyUI must not start after a stop signal"
    assert run.find_events("interrupted")[0]["during"] == "warmup"
    assert_nothing_left(run)


@pytest.mark.parametrize(
    ("signum", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGHUP, "SIGHUP")]
)
def test_stop_signal_while_running_stops_comfyui_with_sigint_and_exits_0(
    start: Callable[..., Pid1], signum: int, name: str
) -> None:
    run = start(env={"SKIP_WARMUP": "1"})
    run.wait_event("comfyui_ready", 30)
    run.signal(signum)
    assert run.wait_exit(10) == 0
    assert [r["signum"] for r in h.records(run.env, "signal")] == [signal.SIGINT]
    assert [r["code"] for r in h.records(run.env, "exit")] == [0]
    assert run.find_events("stopping")[0]["signal"] == name
    # SIGHUP is a stop like the others, never a supervisord reload.
    assert "restarting" not in run.stdout().lower()
    assert "Stopped server" in run.stdout()
    assert_nothing_left(run)


def test_escaped_process_gets_sigterm_then_sigkill_before_pid1_exits(
    start: Callable[..., Pid1],
) -> None:
    run = start(env={"SKIP_WARMUP": "1"})
    run.wait_event("comfyui_ready", 30)
    escapee = h.http(run, "POST", "/standin/escape")["pid"]
    run.signal(signal.SIGTERM)
    assert run.wait_exit(10) == 0
    termed = run.find_events("stopping_leftovers")
    killed = run.find_events("killing_leftovers")
    assert str(escapee) in termed[0]["pids"].split(",")
    assert str(escapee) in killed[0]["pids"].split(",")
    assert_nothing_left(run)


def test_default_budget_stops_programs_that_ignore_sigint_and_sigterm_within_10_seconds(
    start: Callable[..., Pid1],
) -> None:
    # Default COMFYUI_STOP_SECONDS (6) and the metrics sidecar beside ComfyUI: the worst
    # case the budget in pid1/stop.py is written for.
    env = {
        "SKIP_WARMUP": "1",
        "STANDIN_IGNORE": "TERM,INT",
        "COMFYUI_STOP_SECONDS": "6",
        "METRICS": "1",
        "METRICS_ADDR": "127.0.0.1",
        "METRICS_PORT": str(free_port()),
    }
    run = start(env=env)
    run.wait_event("comfyui_ready", 30)
    h.wait_for(
        lambda: "RUNNING" in run.supervisorctl("status", "metrics").stdout,
        20,
        "the metrics sidecar to run",
        step=0.3,
    )
    h.http(run, "POST", "/standin/escape")
    begun = time.monotonic()
    run.signal(signal.SIGTERM)
    code = run.wait_exit(10)  # docker's grace: raises if PID 1 were still there
    took = time.monotonic() - begun
    assert code == 0
    assert took < 10, took
    assert [r["signum"] for r in h.records(run.env, "signal")] == [signal.SIGINT]
    assert "killing 'comfyui'" in run.stdout() or run.find_events("killing_leftovers")
    assert "stopped: metrics" in run.stdout() or run.find_events("stopping_leftovers")
    assert_nothing_left(run)


def test_second_stop_signal_cuts_the_wait_short(start: Callable[..., Pid1]) -> None:
    env = {"SKIP_WARMUP": "1", "STANDIN_IGNORE": "TERM,INT", "COMFYUI_STOP_SECONDS": "30"}
    run = start(env=env)
    run.wait_event("comfyui_ready", 30)
    run.signal(signal.SIGTERM)
    run.wait_event("stopping", 5)
    run.signal(signal.SIGINT)
    assert run.wait_exit(10) == 0
    assert run.find_events("stop_hurried")[0]["signal"] == "SIGINT"
    assert run.find_events("killing_leftovers")
    assert_nothing_left(run)


def test_supervisord_dying_on_its_own_stops_everything_and_exits_6(
    start: Callable[..., Pid1],
) -> None:
    run = start(env={"SKIP_WARMUP": "1"})
    run.wait_event("comfyui_ready", 30)
    supervisord = run.supervisord_pid()
    os.kill(supervisord, signal.SIGKILL)
    assert run.wait_exit(10) == 6
    assert run.find_events("supervisord_exited")[0]["how"] == "killed by SIGKILL"
    assert_nothing_left(run)


def test_supervisord_that_cannot_start_makes_pid1_exit_6(
    start: Callable[..., Pid1], tmp_path: Path
) -> None:
    # A config supervisord's parser accepts but supervisord cannot honour at start-up.
    shipped = (h.REPO / "supervisord.conf.j2").read_text()
    template = tmp_path / "greedy.conf.j2"
    template.write_text(shipped.replace("\nnodaemon=true\n", "\nnodaemon=true\nminfds=100000000\n"))
    run = start(env={"SKIP_WARMUP": "1", "SUPERVISORD_TEMPLATE": str(template)})
    assert run.wait_exit(20) == 6
    assert run.find_events("supervisord_exited")
    assert "minfds" in run.stdout() + run.stderr()
    assert h.records(run.env, "start") == []
    assert_nothing_left(run)
