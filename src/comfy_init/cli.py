"""Command line: ``comfy-init warmup|start|metrics``.  The only place that catches errors.

PID 1 duty first: ``stop_signals.install()`` runs before anything else is imported, so no stop
signal is lost while the rest of the program loads.
"""

from __future__ import annotations

from comfy_init.pid1 import stop_signals

stop_signals.install()

import argparse  # noqa: E402 - after the signal handlers, on purpose
import os  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402

from comfy_init import __version__, errors  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfy-init",
        description="Container init for ComfyUI pods: warms models from the network volume "
        "onto local NVMe, then runs ComfyUI under supervisord with a metrics sidecar. "
        "Settings come from environment variables (see the README).",
    )
    parser.add_argument("--version", action="version", version=f"comfy-init {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    warm = sub.add_parser(
        "warmup",
        help="copy the configured models to the local cache",
        description="Copy the models listed in the warmup config, found where ComfyUI finds "
        "them ($COMFYUI_PATH/models and the folders of $COMFYUI_PATH/extra_model_paths.yaml), "
        "to $CACHE_PATH (parallel, atomic, incremental), then write the cache's "
        "extra_model_paths.yaml (every type folder the config names). Exit 0; 5 if some "
        "files failed or did not fit; 3 if config lines were skipped (the rest is warmed).",
    )
    warm.add_argument(
        "config",
        nargs="?",
        metavar="CONFIG",
        help="warmup config file (default: $WARMUP_CONFIG, looked up as the README says)",
    )
    mode = warm.add_mutually_exclusive_group()
    mode.add_argument(
        "--list",
        action="store_true",
        help="show each config entry (@auto too), what it expands to, where each file was "
        "found, size, cached; and the lines skipped, with why",
    )
    mode.add_argument(
        "--status",
        action="store_true",
        help="show the cache: per model cached/stale/missing, sizes, free space, "
        "page-cache residency",
    )
    mode.add_argument(
        "--suggest",
        action="store_true",
        help="print a warmup config from the pods' usage journals: most used first, with "
        "opens, last use, pods and size; what does not fit the cache commented out",
    )
    mode.add_argument(
        "--clean",
        action="store_true",
        help="empty the cache (type directories ComfyUI knows are kept)",
    )
    mode.add_argument(
        "--setup-only",
        action="store_true",
        help="only write the cache's extra_model_paths.yaml and say how ComfyUI uses it",
    )
    mode.add_argument(
        "--copy-only",
        action="store_true",
        help="warm the cache but leave extra_model_paths.yaml as it is (how 'start' runs "
        "the background warmup: ComfyUI reads that file only when it starts)",
    )
    warm.add_argument(
        "--json", action="store_true", help="machine-readable --list/--status/--suggest"
    )

    start = sub.add_parser(
        "start",
        help="the container's main job (PID 1): warm up, then run ComfyUI under supervisord",
        description="Read ahead the files ComfyUI read at its last start (beside everything, "
        "unless READAHEAD=0), warm up (unless skipped), write the model paths and the "
        "supervisord config, then run supervisord with ComfyUI and the metrics sidecar until "
        "stopped. Arguments after -- are passed to ComfyUI.",
    )
    when = start.add_mutually_exclusive_group()
    when.add_argument("--skip-warmup", action="store_true", help="start without warming")
    when.add_argument(
        "--warmup-only",
        action="store_true",
        help="warm, then exit (0; 5 if some files failed or did not fit; 3 if config lines "
        "were skipped)",
    )
    vram = start.add_mutually_exclusive_group()
    vram.add_argument("--highvram", action="store_true", help="pass --highvram to ComfyUI")
    vram.add_argument("--lowvram", action="store_true", help="pass --lowvram to ComfyUI")
    start.add_argument(
        "comfyui_extra", nargs=argparse.REMAINDER, metavar="-- ARGS", help="extra ComfyUI arguments"
    )

    sub.add_parser(
        "metrics",
        help="the metrics sidecar (run by supervisord): /metrics, /healthz, /readyz",
        description="Serve Prometheus metrics on $METRICS_ADDR:$METRICS_PORT, watch ComfyUI "
        "(watchdog) and copy downloads from the cache back to the volume.",
    )
    hook = sub.add_parser(
        "hook",
        help="run one of RunPod's start hooks (post-start: run by supervisord)",
        description="post-start: wait until ComfyUI answers, then run /post_start.sh with bash "
        "within $HOOK_TIMEOUT seconds; exit 0 whatever the hook did (its failure is logged).",
    )
    hook.add_argument("hook", choices=["post-start"], help="which hook")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from comfy_init import logs, settings

    log = None
    try:
        conf = settings.from_env(os.environ)
        logs.configure(conf.log_level, conf.log_format)
        log = logs.get_logger("cli")
        if args.command == "warmup":
            from comfy_init.warmup import command as warmup_command

            return warmup_command.run(conf, args)
        if args.command == "start":
            from comfy_init import boot

            return boot.start(conf, args)
        if args.command == "metrics":
            from comfy_init.sidecar import command as sidecar_command

            return sidecar_command.run(conf)
        if args.command == "hook":
            from comfy_init.runpod_conventions import hooks

            return hooks.post_start(
                hooks.POST_START, port=conf.comfyui_port, timeout=conf.hook_timeout
            )
        raise errors.UsageError(f"unknown command {args.command!r}")
    except errors.ComfyInitError as exc:
        if log is not None:
            log.error("failed", error=str(exc), exit_code=exc.exit_code)
        else:
            print(f"comfy-init: {exc}", file=sys.stderr)
        return exc.exit_code
