"""Warmup benchmark: ``comfy-init warmup`` against ``cp -r`` and ``rsync -a``, in one run.

Run it from the repository root, as root (it drops the page cache and mounts FUSE)::

    scripts/bootstrap && .venv/bin/pip install -e '.[bench]'
    .venv/bin/python -m bench.warmup            # about 5 minutes, 5.7 GB of model files
    .venv/bin/python -m bench.warmup --smoke    # a few seconds, tiny files (CI)

It makes a data set once (3 checkpoints of 1.8 GB and 97 small models, 100 files; kept in
``--data-dir`` and reused by later runs), then times, with a cold page cache before each
copy, on (1) a plain local directory and (2) the slow-volume stand-in (``bench/slowfs``: a
FUSE mirror of the same files with per-request latency, a per-handle and a per-mount rate):
``cp -r``, ``rsync -a``, ``comfy-init warmup`` and its immediate all-hits re-run, and on the
volume the best rate of K concurrent ``dd`` readers (K from ``--readers``).  Every copy is
checked byte for byte against its source.  The table (MB/s and ratio to ``cp`` of the same
run, the goals of the warmup issue) is printed and written with a JSON twin to
``--results-dir`` (default ``bench/results/``, not tracked).
``--warmup-env KEY=VALUE`` passes settings to comfy-init (e.g. ``WARMUP_STREAMS=16``);
``--keep-copies`` leaves the copies in ``DATA_DIR/work`` for a look.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from bench import caches, dataset
from bench.results import (
    CP,
    LOCAL,
    PARALLEL,
    PARALLEL_COPY,
    RERUN,
    RSYNC,
    VOLUME,
    WARMUP,
    Results,
    Row,
    best_rows,
)
from bench.runs import (
    BenchError,
    differing,
    parallel_read,
    reader_slices,
    timed,
    warmup_env,
    warmup_totals,
)
from bench.slowfs import MB, Shape, SlowVolume

REPO = Path(__file__).resolve().parents[1]
COMFY_INIT = REPO / ".venv" / "bin" / "comfy-init"


class Bench:
    def __init__(self, args: argparse.Namespace, files: list[dataset.ModelFile]) -> None:
        self.args = args
        self.files = files
        self.work: Path = args.data_dir / "work"
        self.log = self.work / "bench.log"
        self.config = self.work / "warmup_models.conf"
        self.source = args.data_dir / "ComfyUI"  # the backing store; models/ below it
        self.nbytes = dataset.total_bytes(files)
        self.extra = dict(kv.split("=", 1) for kv in args.warmup_env)

    def sources(self, comfyui: Path) -> list[Path]:
        return [comfyui / "models" / f.rel for f in self.files]

    def verify(self, dest: Path, what: str) -> None:
        bad = differing((self.source / "models" / f.rel, dest / f.rel) for f in self.files)
        if bad:
            raise BenchError(f"{what}: {len(bad)} copies differ from their source: {bad[:3]}")

    def fresh(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    def cold(self, comfyui: Path) -> None:
        if comfyui == self.source:
            caches.drop_all(fallback=self.sources(comfyui))
        else:  # the volume: empty the mount's page cache, keep the backing store warm
            caches.warm_files(self.sources(self.source))
            caches.drop_files(self.sources(comfyui))

    def copies(self, target: str, comfyui: Path, vol: SlowVolume | None) -> list[Row]:
        rows = []
        tag = "local" if target == LOCAL else "volume"
        for method, argv in (
            (CP, ["cp", "-r", str(comfyui / "models")]),
            (RSYNC, ["rsync", "-a", f"{comfyui / 'models'}/"]),
        ):
            if shutil.which(argv[0]) is None:
                print(f"{argv[0]} not found: its row is left out", file=sys.stderr)
                continue
            dest = self.fresh(f"{tag}-{argv[0]}")
            self.cold(comfyui)
            before = vol.stats() if vol else None
            t = timed([*argv, str(dest)], self.log)
            note = f"CPU {t.cpu_seconds:.1f} s"
            if vol and before:
                note += f"; {_server_note(before, vol.stats())}"
            self.verify(dest, f"{target} {method}")
            if not self.args.keep_copies:
                shutil.rmtree(dest)
            rows.append(
                Row(
                    target, method, len(self.files), self.nbytes, t.seconds, t.flushed_seconds, note
                )
            )
        return rows

    def warmups(self, target: str, comfyui: Path, vol: SlowVolume | None) -> list[Row]:
        tag = "local" if target == LOCAL else "volume"
        cache, run_dir = self.fresh(f"{tag}-cache"), self.fresh(f"{tag}-run")
        env = warmup_env(comfyui, cache, run_dir, self.config, self.extra)
        self.cold(comfyui)
        before = vol.stats() if vol else None
        t = timed([str(COMFY_INIT), "warmup"], self.log, env)
        server = _server_note(before, vol.stats()) if vol and before else ""
        totals = warmup_totals(run_dir)
        if totals["copied"] != len(self.files):
            raise BenchError(
                f"{target} warmup copied {totals['copied']} of {len(self.files)} files"
            )
        self.verify(cache, f"{target} comfy-init warmup")
        note = f"CPU {t.cpu_seconds:.1f} s; report {totals['seconds']:.2f} s"
        note += f"; {server}" if server else ""
        rows = [
            Row(target, WARMUP, len(self.files), self.nbytes, t.seconds, t.flushed_seconds, note)
        ]
        t = timed([str(COMFY_INIT), "warmup"], self.log, env)
        totals = warmup_totals(run_dir)
        if totals["hit"] != len(self.files):
            raise BenchError(f"{target} re-run: {totals['hit']} hits of {len(self.files)} files")
        note = f"report {totals['seconds']:.3f} s, {totals['hit']} hits"
        rows.append(Row(target, RERUN, len(self.files), 0, t.seconds, None, note))
        if not self.args.keep_copies:
            shutil.rmtree(cache)
        return rows

    def sweep(self, comfyui: Path, readers: list[int], copy: bool = False) -> list[Row]:
        """K concurrent ``dd`` readers, each K in ``readers``, cold cache before each; with
        ``copy`` each writes its range to a local file and fsyncs it."""
        big = [(comfyui / "models" / f.rel, f.size) for f in self.files[: self.args.big_count]]
        rows = []
        for k in readers:
            slices = reader_slices(big, self.args.read_budget_mb * MB, k)
            dest = self.fresh("dd-copies") if copy else None
            if dest is not None:
                dest.mkdir()
            self.cold(comfyui)
            seconds, nbytes = parallel_read(slices, self.log, copy_to=dest)
            method = PARALLEL_COPY if copy else PARALLEL
            note = "dd readers to local files, fsync" if copy else "dd readers"
            rows.append(Row(VOLUME, method, k, nbytes, seconds, None, f"{k} {note}"))
            if dest is not None:
                shutil.rmtree(dest)
        return rows

    def round(self, shape: Shape) -> list[Row]:
        """Every row once, in table order."""
        rows = []
        if LOCAL in self.args.targets:
            rows += self.copies(LOCAL, self.source, None)
            rows += self.warmups(LOCAL, self.source, None)
        if VOLUME in self.args.targets:
            mounted = self.work / "volume" / "ComfyUI"
            with SlowVolume(self.source, mounted, shape) as vol:
                rows += self.copies(VOLUME, mounted, vol)
                rows += self.sweep(mounted, self.args.readers)
                rows += self.sweep(mounted, self.args.readers[-3:], copy=True)
                rows += self.warmups(VOLUME, mounted, vol)
        return rows

    def run(self) -> Results:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.config.write_text(dataset.config_text(self.files), encoding="utf-8")
        shape = Shape(
            latency=self.args.latency_ms / 1000,
            handle_rate=self.args.handle_mbps * MB,
            mount_rate=self.args.mount_mbps * MB,
        )
        res = Results(machine=_machine(), volume_shape=shape.describe(), smoke=self.args.smoke)
        res.extra["data_set"] = {"files": len(self.files), "bytes": self.nbytes}
        res.extra["warmup_env"] = self.extra
        res.extra["rounds"] = self.args.repeat
        # Rounds rather than back-to-back repeats: a busy moment of a shared machine then
        # slows one attempt of every method, not every attempt of one method.
        attempts = [row for _ in range(self.args.repeat) for row in self.round(shape)]
        res.rows, res.sweep = best_rows(attempts)
        if VOLUME in self.args.targets:  # the stand-in's own ceiling: no latency, no caps
            mounted = self.work / "volume" / "ComfyUI"
            with SlowVolume(self.source, mounted, Shape(0, 0, 0)):
                raw = self.sweep(mounted, sorted({self.args.readers[0], self.args.readers[-1]}))
            res.ceiling = {r.files: r.mb_per_s or 0.0 for r in raw}
        return res


def _server_note(before: dict[str, int], after: dict[str, int]) -> str:
    reads = after["reads"] - before["reads"]
    size = (after["read_bytes"] - before["read_bytes"]) // max(reads, 1)
    cpu = after["cpu_seconds"] - before["cpu_seconds"]
    return (
        f"volume: {reads} reads of {size // 1024} KiB, peak {after['max_inflight_reads']} "
        f"in flight, server CPU {cpu:.1f} s"
    )


def _machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.warmup",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--smoke", action="store_true", help="tiny data set, 2 reader counts")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="data set and scratch space (/var/tmp/comfy-init-bench, -smoke with --smoke)",
    )
    p.add_argument("--results-dir", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--big-count", type=int, default=None, help="large checkpoints (3)")
    p.add_argument("--big-mb", type=int, default=None, help="size of each, MB (1800)")
    p.add_argument("--small-count", type=int, default=None, help="small models (97)")
    p.add_argument("--small-kb", type=int, default=None, help="mean size of each, kB (3000)")
    p.add_argument("--latency-ms", type=float, default=1.5, help="volume round trip")
    p.add_argument("--handle-mbps", type=float, default=80, help="volume MB/s per open handle")
    p.add_argument("--mount-mbps", type=float, default=400, help="volume MB/s for the mount")
    p.add_argument("--readers", default=None, help="parallel reader counts (1,2,4,8,12,16)")
    p.add_argument("--read-budget-mb", type=int, default=None, help="MB per reader count (768)")
    p.add_argument(
        "--repeat", type=int, default=None, help="rounds; each row is its best round (2)"
    )
    p.add_argument("--warmup-env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--only",
        choices=("local", "volume"),
        default=None,
        help="time one target only (the full table needs both)",
    )
    p.add_argument(
        "--keep-copies",
        action="store_true",
        help="leave every copy in DATA_DIR/work/{local,volume}-{cp,rsync,cache}",
    )
    args = p.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = Path("/var/tmp/comfy-init-bench" + ("-smoke" if args.smoke else ""))
    base = dataset.SMOKE if args.smoke else dataset.Spec()
    args.spec = dataset.Spec(
        big_count=args.big_count if args.big_count is not None else base.big_count,
        big_bytes=args.big_mb * MB if args.big_mb is not None else base.big_bytes,
        small_count=args.small_count if args.small_count is not None else base.small_count,
        small_bytes=args.small_kb * 1000 if args.small_kb is not None else base.small_bytes,
    )
    args.big_count = args.spec.big_count
    args.targets = {"local": (LOCAL,), "volume": (VOLUME,), None: (LOCAL, VOLUME)}[args.only]
    readers = args.readers or ("1,4" if args.smoke else "1,2,4,8,12,16")
    args.readers = [int(k) for k in readers.split(",")]
    if args.repeat is None:
        args.repeat = 1 if args.smoke else 2
    if args.read_budget_mb is None:
        args.read_budget_mb = 16 if args.smoke else 768
    if any("=" not in kv for kv in args.warmup_env):
        p.error("--warmup-env takes KEY=VALUE")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench: run as root (it drops the page cache and mounts FUSE)", file=sys.stderr)
        return 2
    if not COMFY_INIT.exists():
        print(f"bench: {COMFY_INIT} is missing (run scripts/bootstrap)", file=sys.stderr)
        return 2
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with open(args.data_dir / ".lock", "w", encoding="ascii") as lock:
        try:  # one run per data dir: another would rewrite the files this one is timing
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"bench: another benchmark is running in {args.data_dir} "
                "(wait for it, or give this one its own --data-dir)",
                file=sys.stderr,
            )
            return 2
        print(f"bench: data set in {args.data_dir} ...", file=sys.stderr, flush=True)
        files = dataset.ensure(args.data_dir / "ComfyUI", args.spec)
        try:
            results = Bench(args, files).run()
        except BenchError as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 1
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = (
        args.results_dir
        / f"warmup-{time.strftime('%Y%m%d-%H%M%S')}{'-smoke' if args.smoke else ''}"
    )
    table = results.markdown()
    doc = {**results.as_dict(), "command": " ".join(["python -m bench.warmup", *sys.argv[1:]])}
    stem.with_suffix(".md").write_text(table, encoding="utf-8")
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(table)
    print(f"bench: written {stem}.md and {stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
