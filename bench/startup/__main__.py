"""Startup benchmark: ComfyUI's own start from the volume, with the learned readahead.

Run it from the repository root, as root (it drops the page cache, mounts FUSE and starts
the init in a PID namespace), after ``scripts/bootstrap``::

    .venv/bin/python -m bench.startup            # a few minutes
    .venv/bin/python -m bench.startup --smoke    # seconds, a tiny program (part of the tests)

The program is ``bench/startup/program.py``'s synthetic heavy start (thousands of modules,
large shared libraries, a venv on the volume).  Each run spawns ``comfy-init start`` as
PID 1 (``SKIP_WARMUP=1``, no sidecar) with a cold page cache (``echo 3 > drop_caches``)
and times the spawn until the program answers ``/system_stats``.  Per round:

1. local disk, ``READAHEAD=0``: the baseline;
2. the slow volume, ``READAHEAD=0``;
3. the slow volume, first start (no list yet: it records one);
4. the slow volume, second start (reads the list ahead, records again);
5. the slow volume again at once, page cache warm, ``READAHEAD=0``: what is left when every
   byte is in memory (the volume's per-request latency on lookups and opens).

The stand-in is read-only, so the volume's ``ComfyUI/.comfy-init`` is a bind mount of the
backing folder (the list is written there as on a real volume).
"""

from __future__ import annotations

import argparse
import sys

from bench.startup.run import Config, main

if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    p.add_argument("--smoke", action="store_true", help="a tiny program, one round")
    p.add_argument("--repeat", type=int, default=2, help="rounds; the best of each row is kept")
    p.add_argument("--latency-ms", type=float, default=1.5, help="stand-in round trip")
    p.add_argument("--workdir", default="/var/tmp/comfy-init-bench/startup")
    p.add_argument("--out-dir", default="bench/results")
    args = p.parse_args()
    sys.exit(main(Config.from_args(args)))
