"""``comfy-init start``: the container's main job, as PID 1.

1. (``cli`` already installed the stop-signal handlers, before any other import.)
2. Check what ComfyUI needs and render + check the supervisord config, so a bad setting
   fails in a second, not after a long warmup.
3. Warm up (``WARMUP_MODE=blocking``) in a worker thread while the main thread handles
   signals and reaps; a stop signal cancels it and the run exits 128+N.  A warmup that
   fails never keeps ComfyUI from starting: it then reads models from the volume.
4. Write the cache's ``extra_model_paths.yaml`` (its one write in this start: the background
   warmup runs as ``warmup --copy-only``); start supervisord (ComfyUI, the metrics
   sidecar, and in ``WARMUP_MODE=background`` the warmup beside them); relay program logs
   to stdout; watch ComfyUI (readiness lines, crash-loop restarts).
5. On a stop signal: stop supervisord, then everything left, within the budget
   (``pid1/stop.py``); exit 0.  If supervisord ends on its own: exit ``EXIT_SUPERVISOR``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import psutil

from comfy_init import logs
from comfy_init.comfyui import model_paths
from comfy_init.errors import (
    EXIT_OK,
    EXIT_WARMUP_INCOMPLETE,
    ComfyInitError,
    ConfigError,
    signal_exit_code,
)
from comfy_init.manifest import lines
from comfy_init.manifest.lines import Entry
from comfy_init.manifest.search_path import SearchPath
from comfy_init.pid1 import stop, stop_signals, supervise
from comfy_init.pid1.children import Reaper, become_subreaper, spawn
from comfy_init.pid1.relay import LogRelay
from comfy_init.settings import Settings
from comfy_init.supervisord import comfyui_keeper, programs, rpc
from comfy_init.supervisord import config as supervisord_config
from comfy_init.usage import auto
from comfy_init.wakeup import Wakeup
from comfy_init.warmup.report import Report

log = logs.get_logger("boot")

# How long a cancelled warmup may take to remove its temp files; docker's grace is 10 s.
WARMUP_CANCEL_SECONDS = 8.0
RPC_TIMEOUT_SECONDS = 2.0
SHUTDOWN_RPC_SECONDS = 1.0


def start(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``comfy-init start``; return the exit code (errors raise ComfyInitError)."""
    container_started = psutil.Process().create_time()
    wakeup = Wakeup()
    reaper = Reaper()
    pid1 = os.getpid() == 1
    if not pid1:
        become_subreaper()
    skip = bool(args.skip_warmup or settings.skip_warmup) and not args.warmup_only
    mode = "skip" if skip else settings.warmup_mode
    log.info("starting", pid=os.getpid(), pid1=pid1, warmup=mode, warmup_only=args.warmup_only)
    if args.warmup_only:
        return _warmup_only(settings, reaper, wakeup)

    programs.check_comfyui_present(settings)
    vram = ("--highvram",) if args.highvram else ("--lowvram",) if args.lowvram else ()
    config = supervisord_config.build_config(
        settings,
        vram_flags=vram,
        extra=tuple(args.comfyui_extra or ()),
        background_warmup=mode == "background",
    )
    supervisord_config.install(settings, config)
    budget = stop.budget(settings.comfyui_stop_seconds)
    if budget.total > stop.DOCKER_GRACE_SECONDS:
        log.warning(
            "stop_budget_exceeds_docker_grace",
            budget_seconds=budget.total,
            docker_grace_seconds=stop.DOCKER_GRACE_SECONDS,
            hint=f"COMFYUI_STOP_SECONDS={settings.comfyui_stop_seconds}: give docker stop at "
            f"least {int(budget.total) + 1} s (docker stop -t, or the pod's stop timeout)",
        )

    if mode == "blocking":
        finished = _warm_under_pid1(settings, reaper, wakeup)
        if finished.signum is not None:
            return _interrupted(finished.signum, "warmup")
        if finished.error is not None:
            log.error(
                "warmup_failed",
                error=str(finished.error),
                exc_info=None if isinstance(finished.error, ComfyInitError) else finished.error,
                effect="ComfyUI starts anyway and reads models from the volume",
            )
        elif finished.value is not None and finished.value.config_problems():
            log.error(
                "warmup_skipped_lines",
                problems=finished.value.config_problems(),
                effect="ComfyUI starts; those models load from where ComfyUI finds them, "
                "everything else was warmed",
            )
    # Once per start, before ComfyUI: a background warmup (warmup --copy-only) leaves it be.
    write_model_paths(settings)

    signum = stop_signals.take()
    if signum is not None:
        return _interrupted(signum, "start-up")
    return _run_supervisord(settings, reaper, wakeup, budget, container_started)


def _run_supervisord(
    settings: Settings,
    reaper: Reaper,
    wakeup: Wakeup,
    budget: stop.Budget,
    container_started: float,
) -> int:
    # Constructed before supervisord starts: log files left by an earlier run are followed
    # from their end, so nothing is relayed twice.
    relay = LogRelay(settings.log_dir)
    pid = spawn(supervisord_config.argv(settings))
    reaper.watch(pid, "supervisord")
    log.info("supervisord_started", pid=pid, config=str(settings.supervisord_conf))
    relay.start()
    client = rpc.Client(settings.supervisord_socket, timeout=RPC_TIMEOUT_SECONDS)
    keeper = comfyui_keeper.ComfyUIKeeper(
        client,
        port=settings.comfyui_port,
        container_started=container_started,
        backoff=comfyui_keeper.Backoff(settings.comfyui_restart_backoff),
    ).start()
    try:
        code = supervise.run_supervisord(
            pid,
            reaper=reaper,
            wakeup=wakeup,
            budget=budget,
            on_stopping=keeper.stop,
            request_stop=lambda: request_shutdown(client),
        )
    except BaseException:
        keeper.stop()
        stop.terminate_leftovers(reaper, wakeup, budget)
        raise
    finally:
        relay.stop()
    log.info("exiting", code=code, orphans_reaped=reaper.orphans_reaped)
    return code


def request_shutdown(client: rpc.Client) -> bool:
    """Ask supervisord to stop its programs and exit; False if it could not be asked.

    Over the socket supervisord starts at once; a SIGTERM waits for its next loop tick.
    """
    try:
        client.call("supervisor.shutdown", timeout=SHUTDOWN_RPC_SECONDS)
    except rpc.RpcFault as exc:
        return exc.fault_name == "SHUTDOWN_STATE"  # already on its way out
    except rpc.SupervisordUnavailable as exc:
        log.info("supervisord_not_answering", error=str(exc), fallback="SIGTERM")
        return False
    return True


def _warm(settings: Settings, cancel: threading.Event) -> Report:
    from comfy_init.warmup import engine  # the copier's threads start only when warming

    return engine.run(settings, config=None, cancel=cancel)


def _warm_under_pid1(
    settings: Settings, reaper: Reaper, wakeup: Wakeup
) -> supervise.Finished[Report]:
    """Warm in a worker thread while the main thread takes signals and reaps."""
    return supervise.run_worker(
        lambda cancel: _warm(settings, cancel),
        name="warmup",
        reaper=reaper,
        wakeup=wakeup,
        cancel_grace=WARMUP_CANCEL_SECONDS,
    )


def _warmup_only(settings: Settings, reaper: Reaper, wakeup: Wakeup) -> int:
    finished = _warm_under_pid1(settings, reaper, wakeup)
    if finished.signum is not None:
        return _interrupted(finished.signum, "warmup")
    if finished.error is not None:
        raise finished.error
    report = finished.value
    write_model_paths(settings)
    problems = report.config_problems() if report is not None else []
    if problems:
        raise ConfigError(problems)
    incomplete = report is not None and (report.totals.failed or report.totals.skipped_space)
    code = EXIT_WARMUP_INCOMPLETE if incomplete else EXIT_OK
    log.info("exiting", code=code, reason="warmup-only")
    return code


def _interrupted(signum: int, during: str) -> int:
    code = signal_exit_code(signum)
    log.warning("interrupted", signal=supervise.signal_name(signum), during=during, code=code)
    return code


def config_entries(settings: Settings) -> list[Entry]:
    """The warmup config's good entries (a bad line is left out: the warmup reports it);
    none when there is no readable config (ComfyUI still starts, and then reads every
    model from the volume)."""
    try:
        path = lines.locate(settings, None)
        return lines.load_lines(path, SearchPath.of(settings).anchors()).entries
    except ConfigError as exc:
        log.info("model_paths_without_config", reason=str(exc))
        return []


def write_model_paths(settings: Settings) -> None:
    """Write the cache's YAML for the config (ComfyUI is started with it, so it must exist)."""
    entries = config_entries(settings)
    model_paths.write(settings, entries, auto.model_types(entries, settings, time.time()))
