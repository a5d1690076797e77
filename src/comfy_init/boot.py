"""``comfy-init start``: the container's main job, as PID 1.

1. (``cli`` already installed the stop-signal handlers, before any other import.)  The
   readahead of what ComfyUI read at its last start begins, in threads beside all that
   follows (``readahead/``).
2. RunPod's conventions: ``PUBLIC_KEY`` checked, ``/pre_start.sh`` run, SSH / JupyterLab
   set up (``runpod_conventions``).  The metrics port's web config is checked and the
   supervisord config rendered + checked, so a bad setting fails in a second, not after a
   long warmup.
3. Warm up (``WARMUP_MODE=blocking``) in a worker thread while the main thread handles
   signals and reaps; a stop signal cancels it and the run exits 128+N.  A warmup that
   fails never keeps ComfyUI from starting: it then reads models from the volume.
4. Write the cache's ``extra_model_paths.yaml`` (its one write in this start: the background
   warmup runs as ``warmup --copy-only``); start supervisord (ComfyUI, the metrics
   sidecar, sshd, JupyterLab, the post-start hook, and in ``WARMUP_MODE=background`` the
   warmup beside them); relay program logs to stdout; watch ComfyUI (readiness lines,
   crash-loop restarts).  No ComfyUI on the volume yet: supervisord runs without starting
   it, and ``comfyui.arrival`` warms and starts it once ``main.py`` appears.
5. On a stop signal: stop supervisord, then everything left, within the budget
   (``pid1/stop.py``); exit 0.  If supervisord ends on its own: exit ``EXIT_SUPERVISOR``.
"""

from __future__ import annotations

import argparse
import os
import threading
from collections.abc import Mapping

import psutil

from comfy_init import logs
from comfy_init.comfyui.arrival import Arrival
from comfy_init.errors import (
    EXIT_OK,
    EXIT_WARMUP_INCOMPLETE,
    ConfigError,
    signal_exit_code,
)
from comfy_init.pid1 import stop, stop_signals, supervise
from comfy_init.pid1.children import Reaper, become_subreaper, spawn
from comfy_init.pid1.relay import LogRelay
from comfy_init.readahead.session import Session as Readahead
from comfy_init.runpod_conventions import hooks, pod, ssh
from comfy_init.settings import Settings
from comfy_init.sidecar import web_config
from comfy_init.supervisord import comfyui_keeper, programs, rpc, update
from comfy_init.supervisord import config as supervisord_config
from comfy_init.wakeup import Wakeup
from comfy_init.warmup import at_start
from comfy_init.warmup.at_start import write_model_paths

log = logs.get_logger("boot")

RPC_TIMEOUT_SECONDS = 2.0
SHUTDOWN_RPC_SECONDS = 1.0
ARRIVAL_JOIN_SECONDS = 1.0  # a cancelled warmup after ComfyUI's arrival, at the very end


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
        programs.check_comfyui_present(settings)
        return _warmup_only(settings, reaper, wakeup)

    readahead = Readahead.of(settings)
    hook = readahead.environment(os.environ.get("PYTHONPATH"))  # records ComfyUI's reads
    if settings.metrics and settings.metrics_web_config is not None:
        web_config.load(settings.metrics_web_config)  # a bad file stops us here, not later
    # A bad key fails now, not at login (unless SSH=0: then PUBLIC_KEY is not used).
    keys = ssh.parse_public_keys(settings.public_key if settings.ssh != "0" else "")
    pre = hooks.run_hook(
        hooks.PRE_START,
        name="pre_start",
        timeout=settings.hook_timeout,
        reaper=reaper,
        wakeup=wakeup,
    )
    if pre is not None and pre.signum is not None:
        return _interrupted(pre.signum, "pre_start")
    the_pod = pod.prepare(settings, keys, os.environ, reaper=reaper, wakeup=wakeup)
    if the_pod.signum is not None:
        return _interrupted(the_pod.signum, "ssh set-up")
    installed = (settings.comfyui_path / "main.py").is_file()
    config = _config(settings, args, the_pod, mode=mode, installed=installed, hook=hook)
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

    arrival = None
    if not installed:
        arrival = Arrival(
            settings.comfyui_path / "main.py",
            lambda cancel: _after_arrival(settings, args, the_pod, mode, cancel, hook=hook),
        )
    elif mode == "blocking":
        finished = at_start.under_pid1(settings, reaper, wakeup)
        if finished.signum is not None:
            return _interrupted(finished.signum, "warmup")
        at_start.tell(finished)
    if installed:
        # Once per start, before ComfyUI: a background warmup (warmup --copy-only) leaves it.
        write_model_paths(settings)

    signum = stop_signals.take()
    if signum is not None:
        return _interrupted(signum, "start-up")
    return _run_supervisord(
        settings, reaper, wakeup, budget, container_started, arrival=arrival, readahead=readahead
    )


def _config(
    settings: Settings,
    args: argparse.Namespace,
    the_pod: pod.Pod,
    *,
    mode: str,
    installed: bool,
    hook: Mapping[str, str],
) -> supervisord_config.SupervisordConfig:
    """This start's supervisord config: ComfyUI autostarts only once it is installed."""
    vram = ("--highvram",) if args.highvram else ("--lowvram",) if args.lowvram else ()
    return supervisord_config.build_config(
        settings,
        vram_flags=vram,
        extra=tuple(args.comfyui_extra or ()),
        background_warmup=installed and mode == "background",
        comfyui_installed=installed,
        sshd=the_pod.sshd,
        jupyter_lab=the_pod.jupyter_lab,
        post_start=the_pod.post_start,
        comfyui_environment=hook,
    )


def _after_arrival(
    settings: Settings,
    args: argparse.Namespace,
    the_pod: pod.Pod,
    mode: str,
    cancel: threading.Event,
    *,
    hook: Mapping[str, str],
) -> None:
    """ComfyUI appeared on the volume: warm (blocking mode), write its paths, then render
    the config again and have the running supervisord take it: ComfyUI (and a background
    warmup) start, SSH sessions and the sidecar go on."""
    if mode == "blocking":
        try:
            at_start.left_out(at_start.warm(settings, cancel))
        except Exception as exc:
            at_start.failed(exc)
        if cancel.is_set():
            return
    write_model_paths(settings)
    supervisord_config.install(
        settings, _config(settings, args, the_pod, mode=mode, installed=True, hook=hook)
    )
    client = rpc.Client(settings.supervisord_socket, timeout=RPC_TIMEOUT_SECONDS)
    update.apply(client)


def _run_supervisord(
    settings: Settings,
    reaper: Reaper,
    wakeup: Wakeup,
    budget: stop.Budget,
    container_started: float,
    *,
    arrival: Arrival | None = None,
    readahead: Readahead,
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
        on_ready=readahead.comfyui_ready,
    ).start()
    if arrival is not None:
        arrival.start()

    def stopping() -> None:
        keeper.stop()
        if arrival is not None:
            arrival.stop()  # a warmup it runs is cancelled and removes its temp files

    try:
        code = supervise.run_supervisord(
            pid,
            reaper=reaper,
            wakeup=wakeup,
            budget=budget,
            on_stopping=stopping,
            request_stop=lambda: request_shutdown(client),
        )
    except BaseException:
        stopping()
        stop.terminate_leftovers(reaper, wakeup, budget)
        raise
    finally:
        readahead.cancel.set()
        relay.stop()
        if arrival is not None:
            arrival.join(ARRIVAL_JOIN_SECONDS)
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


def _warmup_only(settings: Settings, reaper: Reaper, wakeup: Wakeup) -> int:
    finished = at_start.under_pid1(settings, reaper, wakeup)
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
