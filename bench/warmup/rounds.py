"""The rows of the warmup benchmark, timed in rounds: every copy method on local disk and
on the slow volume, the parallel-reader sweeps, ``comfy-init warmup`` and its re-run.

``Bench(args, files).run()`` returns the ``Results``: the fastest round of each row.  Each
copy starts from a cold page cache (``cold``) and is checked byte for byte afterwards.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from bench import caches
from bench.commands import COMFY_INIT, BenchError, differing, timed, warmup_env, warmup_totals
from bench.outputs import machine
from bench.slowfs import MB, Shape, SlowVolume
from bench.warmup import dataset
from bench.warmup.readers import parallel_read, reader_slices
from bench.warmup.results import (
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
        res = Results(machine=machine(), volume_shape=shape.describe(), smoke=self.args.smoke)
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
