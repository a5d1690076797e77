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
run, the goals the warmup is held to) is printed and written with a JSON twin to
``--results-dir`` (default ``bench/results/``, not tracked).
``--warmup-env KEY=VALUE`` passes settings to comfy-init (e.g. ``WARMUP_STREAMS=16``);
``--keep-copies`` leaves the copies in ``DATA_DIR/work`` for a look.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench import outputs
from bench.commands import COMFY_INIT, BenchError
from bench.slowfs import MB
from bench.table import LOCAL, VOLUME
from bench.warmup import dataset
from bench.warmup.rounds import Bench


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
    p.add_argument("--results-dir", type=Path, default=outputs.RESULTS_DIR)
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
    try:
        with outputs.data_dir_lock(args.data_dir):
            print(f"bench: data set in {args.data_dir} ...", file=sys.stderr, flush=True)
            files = dataset.ensure(args.data_dir / "ComfyUI", args.spec)
            results = Bench(args, files).run()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, outputs.DataDirBusy) else 1
    stem = args.results_dir / f"warmup-{outputs.stamp()}{'-smoke' if args.smoke else ''}"
    table = results.markdown()
    command = " ".join(["python -m bench.warmup", *sys.argv[1:]])
    outputs.write(stem, table, {**results.as_dict(), "command": command})
    print(table)
    print(f"bench: written {stem}.md and {stem}.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
