"""One start of comfy-init per warmup mode, timed from the spawn of PID 1.

For each mode (``SKIP_WARMUP=1``, blocking, background), with a cold page cache and an
empty cache directory: spawn ``comfy-init start``; time until ComfyUI answers; as soon as it
does, load each model once through ComfyUI, in order (the time from the spawn until each
load is done, and where the model came from); the moment each copy lands in the cache is
read from the warmup report, polled every 50 ms.  In background mode, once the warmup is
done, each model is loaded again: it must now come from the cache.  Then switching: the
two largest models are loaded alternately.  Optionally the init's footprint is measured
(idle, then scraped once a second).  Finally PID 1 gets SIGTERM and its exit status is kept.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.e2e.footprint import Window, measure
from bench.e2e.load import Load, Target, load_via_comfyui
from bench.e2e.models import Model
from harness.boots import clean_env, port
from harness.loopback import free_port, http
from harness.pid1 import PYTHON, Pid1
from harness.polling import wait_for

SKIP, BLOCKING, BACKGROUND = "SKIP_WARMUP=1", "blocking", "background"
MODES = (SKIP, BLOCKING, BACKGROUND)
MODE_ENV = {
    SKIP: {"SKIP_WARMUP": "1"},
    BLOCKING: {"SKIP_WARMUP": "0", "WARMUP_MODE": "blocking"},
    BACKGROUND: {"SKIP_WARMUP": "0", "WARMUP_MODE": "background"},
}
LANDED = ("copied", "hit")


@dataclass(frozen=True)
class Timed:
    model: str  # e.g. "checkpoints/bench-checkpoint.safetensors"
    done_at: float  # seconds from the spawn of PID 1 until the load returned
    load: Load


@dataclass
class ModeRun:
    target: str
    mode: str
    ready: float  # seconds from the spawn until ComfyUI answered
    cache: str = ""  # CACHE_PATH of this run
    first: list[Timed] = field(default_factory=list)
    landed: dict[str, float] = field(default_factory=dict)  # model -> s from the spawn
    after_landing: list[Timed] = field(default_factory=list)
    switches: list[Load] = field(default_factory=list)
    warmup_seconds: float | None = None  # the warmup report's own wall time
    footprint: list[Window] = field(default_factory=list)
    exit_code: int | None = None


@dataclass(frozen=True)
class Options:
    work: Path
    ready_timeout: float = 300.0
    rounds: int = 1  # in-process model loads (bench.e2e), the fastest kept
    switches: int = 4
    settle_seconds: float = 0.0  # quiet time before the idle window
    idle_seconds: float = 0.0  # 0: no footprint
    scrape_seconds: float = 0.0
    extra_env: tuple[tuple[str, str], ...] = ()


class LandingWatch:
    """Polls the warmup report; remembers when each file first showed as in the cache."""

    def __init__(self, report: Path, run: Pid1) -> None:
        self.report, self.run = report, run
        self.landed: dict[str, float] = {}
        self.state: str | None = None
        self.seconds: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="landing-watch", daemon=True)

    def __enter__(self) -> LandingWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError, KeyError):
                doc = json.loads(self.report.read_text(encoding="utf-8"))
                now = self.run.since_start()
                for f in doc["files"]:
                    if f["status"] in LANDED:
                        self.landed.setdefault(f"{f['type']}/{f['name']}", now)
                self.state = doc["state"]
                self.seconds = doc["totals"]["seconds"] if self.state != "running" else None


def env_for(target: Target, mode: str, cache: Path, run_dir: Path, opts: Options) -> dict[str, str]:
    return clean_env(
        {
            "COMFYUI_PATH": str(target.comfyui),
            "COMFYUI_PYTHON": str(PYTHON),
            "COMFYUI_PORT": str(free_port()),
            "COMFYUI_ARGS": "--listen 127.0.0.1",
            "CACHE_PATH": str(cache),
            "CACHE_RESERVE_MB": "0",
            "RUN_DIR": str(run_dir),
            "SUPERVISORD_CONF": str(run_dir / "supervisord.conf"),
            "WARMUP_CONFIG": str(opts.work / "warmup_models.conf"),
            "METRICS_PORT": str(free_port()),
            "METRICS_ADDR": "127.0.0.1",
            "LOG_FORMAT": "json",
            **MODE_ENV[mode],
            **dict(opts.extra_env),
        }
    )


def wait_ready(run: Pid1, timeout: float) -> float:
    """Seconds from the spawn until ComfyUI answers ``GET /system_stats``."""

    def answered() -> float | None:
        run._fail_if_exited("ComfyUI to answer /system_stats")
        with contextlib.suppress(OSError):
            if http(port(run), "/system_stats", timeout=1.0)[0] == 200:
                return run.since_start()
        return None

    return wait_for(answered, timeout, "ComfyUI to answer /system_stats", step=0.01)


def run_mode(target: Target, mode: str, models: list[Model], opts: Options) -> ModeRun:
    tag = f"{target.name.split()[-1]}-{mode.split('=', maxsplit=1)[0].lower()}"
    cache = opts.work / f"{tag}-cache"
    shutil.rmtree(cache, ignore_errors=True)
    # RUN_DIR holds a unix socket, whose path must stay short: a temp dir of its own.
    run_dir = Path(tempfile.mkdtemp(prefix=f"comfy-init-e2e-{tag}-"))
    t0 = time.perf_counter()
    target.cold(models)
    cold_s = time.perf_counter() - t0
    boot = Pid1(opts.work / f"{tag}-logs", env_for(target, mode, cache, run_dir, opts))
    try:
        boot.start()
        with LandingWatch(run_dir / "warmup-report.json", boot) as watch:
            run = ModeRun(target.name, mode, wait_ready(boot, opts.ready_timeout), str(cache))
            for m in models:
                load = load_via_comfyui(boot, m, cache)
                run.first.append(Timed(m.rel, boot.since_start(), load))
            if mode != SKIP:
                wait_for(
                    lambda: watch.seconds is not None,
                    opts.ready_timeout,
                    "the warmup to finish (warmup report)",
                    step=0.05,
                )
                run.warmup_seconds = watch.seconds
                if watch.state != "done":
                    raise RuntimeError(f"{target.name} {mode}: the warmup ended {watch.state}")
            if mode == BACKGROUND:
                for m in models:
                    load = load_via_comfyui(boot, m, cache)
                    run.after_landing.append(Timed(m.rel, boot.since_start(), load))
            time.sleep(0.1)  # one more poll of the report
            run.landed = dict(watch.landed)
        pair = models[:2]
        for i in range(opts.switches):
            run.switches.append(load_via_comfyui(boot, pair[i % 2], cache))
        if opts.idle_seconds > 0:
            time.sleep(opts.settle_seconds)
            run.footprint.append(measure(boot, "idle", opts.idle_seconds))
        if opts.scrape_seconds > 0:
            window = measure(boot, "scraped 1/s", opts.scrape_seconds, 1.0)
            run.footprint.append(window)
        done = boot.since_start()
        run.exit_code = boot.stop()
        stop_s = boot.since_start() - done
        print(
            f"bench: {target.name}, {mode}: cold page cache {cold_s:.1f} s, "
            f"ready {run.ready:.1f} s, all done {done:.1f} s, stop {stop_s:.1f} s "
            f"(exit {run.exit_code})",
            file=sys.stderr,
            flush=True,
        )
        return run
    finally:
        boot.close()
        shutil.rmtree(run_dir, ignore_errors=True)
