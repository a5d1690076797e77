"""Model files for the benchmarks: pseudo-random filler written once per machine.

Content is pseudo-random and seeded by the file's name, different in every block of every
file (each block starts with the seed and its offset), so no filesystem can skip zeros and
a copy that moves a block reads differently.  A file is written through a temp name, so a
half file is never seen under its own.  A stamp beside the files records what was made;
a later run that wants the same files (same stamp, same sizes) reuses them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

BLOCK = 4 * 1024 * 1024


def write_filler(path: Path, nbytes: int, seed: str, prefix: bytes = b"") -> None:
    """Write ``prefix`` then ``nbytes`` of filler to ``path`` (through a temp name)."""
    mark = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little")
    block = bytearray(random.Random(seed).randbytes(BLOCK))  # noqa: S311 - filler, not secrets
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(prefix)
        done = 0
        while done < nbytes:
            block[:16] = struct.pack("<QQ", mark, done)  # every block of every file differs
            n = min(BLOCK, nbytes - done)
            fh.write(memoryview(block)[:n])
            done += n
    os.replace(tmp, path)


def made_before(stamp: Path, wanted: Any, sizes: Mapping[Path, int]) -> bool:
    """Whether an earlier run left exactly these files: ``stamp`` records ``wanted`` and
    every file has its size."""
    try:
        recorded = json.loads(stamp.read_text(encoding="utf-8"))
        return bool(recorded == wanted) and all(p.stat().st_size == n for p, n in sizes.items())
    except (FileNotFoundError, json.JSONDecodeError):
        return False


def write_stamp(stamp: Path, wanted: Any) -> None:
    """Record ``wanted`` once the files are written and on disk."""
    os.sync()
    stamp.write_text(json.dumps(wanted, indent=1) + "\n", encoding="utf-8")
