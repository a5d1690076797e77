"""End-to-end benchmark: comfy-init with and without warmup, from spawn to loaded models.

Run it from the repository root, as root (it drops the page cache, mounts FUSE and starts
the init in a PID namespace), after ``scripts/bootstrap`` (which installs the bench extra)::

    .venv/bin/python -m bench.e2e                 # about 10 minutes, 3 GiB of models
    .venv/bin/python -m bench.e2e --smoke         # well under a minute, tiny models (CI)
    .venv/bin/python -m bench.e2e --docs          # the full run, written to docs/bench/

On plain local disk and on the slow-volume stand-in (``bench/slowfs``: a read-only FUSE
mirror with a per-request latency, a per-handle and a per-mount rate), with real
safetensors models (``bench/e2e/models.py``: a checkpoint, a diffusion model, a LoRA):

1. model load as ComfyUI does it (``safe_open``, ``get_tensor`` for every key) from the
   volume and from the cache, each with a cold and a warm page cache;
2. time to ready: from spawning ``comfy-init start`` as PID 1 (``unshare``, as in the
   image) until the ComfyUI stand-in answers ``/system_stats``, for ``SKIP_WARMUP=1``,
   blocking and background warmup;
3. time to the first load of each model after start, per mode (and in background mode,
   each model again once its copy landed: it must come from the cache);
4. switching: the two largest models loaded alternately;
5. the init's footprint (PID 1, supervisord, the metrics sidecar): RSS, PSS and CPU, idle
   and with one scrape of ``/metrics`` per second.

Figures are ratios to a baseline of the same run.  The Markdown table is printed; Markdown,
JSON and a PNG plot go to ``--out-dir`` (default ``bench/results/``, not tracked), or to
``docs/bench/e2e.*`` with ``--docs``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from bench import REPO, caches, outputs
from bench.commands import BenchError
from bench.e2e import models as e2e_models
from bench.e2e.load import Load, Target, load_in_process
from bench.e2e.modes import BACKGROUND, MODES, Options, run_mode
from bench.e2e.plot import write_png
from bench.e2e.results import COLD, WARM, LoadRow, Results
from bench.slowfs import MB, Shape, SlowVolume
from bench.table import LOCAL, VOLUME
from harness.standin import make_comfyui_dir

GIB = 1024**3


def model_loads(
    target: Target, models: list[e2e_models.Model], cache: Path, rounds: int
) -> list[LoadRow]:
    """The largest model loaded in-process from the volume and from the cache, each with a
    cold then a warm page cache; ``rounds`` times, the fastest of each kept."""
    model = models[0]
    copy = cache / model.rel
    seen: dict[tuple[str, str], list[Load]] = {}
    for _ in range(rounds):
        target.cold(models)
        cold = load_in_process(target.model_path(model), "volume", target)
        if target.volume is not None and (cold.volume_bytes or 0) < model.size:
            raise BenchError(
                f"cold volume load: {cold.volume_bytes} bytes came through FUSE for a "
                f"{model.size}-byte model (the mount's page cache was not cold)"
            )
        seen.setdefault(("volume", COLD), []).append(cold)
        warm = load_in_process(target.model_path(model), "volume", target)
        seen.setdefault(("volume", WARM), []).append(warm)
        caches.drop_all(fallback=[copy])
        seen.setdefault(("cache", COLD), []).append(load_in_process(copy, "cache"))
        seen.setdefault(("cache", WARM), []).append(load_in_process(copy, "cache"))
    return [
        LoadRow(
            target.name,
            source,
            state,
            min(loads, key=lambda x: x.seconds),
            tuple(x.seconds for x in loads),
        )
        for (source, state), loads in seen.items()
    ]


def run_target(target: Target, models: list[e2e_models.Model], opts: Options, res: Results) -> None:
    for mode in MODES:
        footprint = target.name == VOLUME and mode == BACKGROUND
        mode_opts = opts if footprint else replace(opts, idle_seconds=0, scrape_seconds=0)
        res.runs.append(run_mode(target, mode, models, mode_opts))
    background = res.run(target.name, BACKGROUND)
    assert background is not None
    res.loads += model_loads(target, models, Path(background.cache), opts.rounds)


def run(args: argparse.Namespace) -> Results:
    models = e2e_models.plan(int(args.gb * GIB))
    backing = args.data_dir / "ComfyUI"
    make_comfyui_dir(backing)  # the stand-in's current files and empty models/<type>
    print(f"bench: models in {backing} ...", file=sys.stderr, flush=True)
    e2e_models.ensure(backing, models)
    work = args.data_dir / "work"
    mount = work / "volume" / "ComfyUI"
    if os.path.ismount(mount):  # left by a run that was killed
        subprocess.run(["fusermount3", "-u", "-z", str(mount)], check=False)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "warmup_models.conf").write_text(e2e_models.config_text(models), encoding="utf-8")
    shape = Shape(args.latency_ms / 1000, args.handle_mbps * MB, args.mount_mbps * MB)
    res = Results(
        machine=outputs.machine(),
        volume_shape=shape.describe(),
        cold_method="sync; echo 3 > /proc/sys/vm/drop_caches (slow volume: backing files then "
        "re-read, the mount's pages dropped with POSIX_FADV_DONTNEED)",
        models=[{"rel": m.rel, "size": m.size, "tensors": len(m.tensors)} for m in models],
        smoke=args.smoke,
        load_model=models[0].rel,
    )
    opts = Options(
        work,
        rounds=args.rounds,
        switches=args.switches,
        settle_seconds=0.0 if args.smoke else 5.0,
        idle_seconds=args.idle_seconds,
        scrape_seconds=args.scrape_seconds,
    )
    run_target(Target(LOCAL, backing, backing), models, opts, res)
    with SlowVolume(backing, mount, shape) as vol:
        run_target(Target(VOLUME, mount, backing, vol), models, opts, res)
    if not args.keep:
        for path in work.glob("*-cache"):
            shutil.rmtree(path)
    return res


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.e2e",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--smoke", action="store_true", help="tiny models, short windows (CI)")
    p.add_argument("--gb", type=float, default=None, help="GiB of models configured (3)")
    p.add_argument("--data-dir", type=Path, default=None, help="/var/tmp/comfy-init-e2e[-smoke]")
    p.add_argument("--out-dir", type=Path, default=outputs.RESULTS_DIR)
    p.add_argument("--docs", action="store_true", help="write docs/bench/e2e.{md,json,png}")
    p.add_argument("--latency-ms", type=float, default=1.5, help="volume round trip")
    p.add_argument("--handle-mbps", type=float, default=80, help="volume MB/s per open handle")
    p.add_argument("--mount-mbps", type=float, default=400, help="volume MB/s for the mount")
    p.add_argument("--rounds", type=int, default=None, help="model-load rounds, best kept (2)")
    p.add_argument("--switches", type=int, default=None, help="alternating loads (6)")
    p.add_argument("--idle-seconds", type=float, default=None, help="idle window (60)")
    p.add_argument("--scrape-seconds", type=float, default=None, help="scraped window (60)")
    p.add_argument("--keep", action="store_true", help="keep the caches in DATA_DIR/work")
    args = p.parse_args(argv)
    smoke = args.smoke
    if args.data_dir is None:
        args.data_dir = Path("/var/tmp/comfy-init-e2e" + ("-smoke" if smoke else ""))
    for name, full, small in (
        ("gb", 3.0, 0.06),
        ("rounds", 2, 1),
        ("switches", 6, 4),
        ("idle_seconds", 60.0, 2.0),
        ("scrape_seconds", 60.0, 3.0),
    ):
        if getattr(args, name) is None:
            setattr(args, name, small if smoke else full)
    if args.docs:
        args.out_dir = REPO / "docs" / "bench"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench: run as root (drop_caches, FUSE, PID namespaces)", file=sys.stderr)
        return 2
    try:
        with outputs.data_dir_lock(args.data_dir):
            results = run(args)
    # The harness fails as a test would, with an AssertionError (a timeout, PID 1 gone).
    except (RuntimeError, AssertionError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, outputs.DataDirBusy) else 1
    stem = "e2e" if args.docs else f"e2e-{outputs.stamp()}"
    stem += "-smoke" if args.smoke and not args.docs else ""
    out = args.out_dir / stem
    table = results.markdown()
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([".venv/bin/python -m bench.e2e", *given])
    outputs.write(out, f"`{command}`\n\n{table}", {**results.as_dict(), "command": command})
    write_png(results, out.with_suffix(".png"))
    print(table)
    print(f"bench: written {out}.md, .json and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
