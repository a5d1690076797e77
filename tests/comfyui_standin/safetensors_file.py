"""Write and read safetensors files for tests (standard library only).

Layout: 8-byte little-endian header length, a JSON header padded with spaces to a multiple of
8 bytes, then the data.  ``make_safetensors`` writes one ``U8`` tensor named ``data`` whose
length makes the whole file exactly ``size_bytes`` long.

How the data bytes are produced (``content``):

* ``"pattern"`` — real bytes, different for every file and every MiB of it (seeded by the
  file name), so a copy that swaps, drops or repeats a range gets a different checksum.
  Default up to ``PATTERN_LIMIT`` bytes.
* ``"allocated"`` — ``os.posix_fallocate``: real disk blocks that read as zeros, written in
  no time.  Default above ``PATTERN_LIMIT``; use it only where the content does not matter.
  Falls back to ``"sparse"`` on filesystems that cannot allocate.
* ``"sparse"`` — ``truncate``: a hole that reads as zeros and takes no disk space.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import struct
from pathlib import Path

PATTERN_LIMIT = 32 * 1024 * 1024
_BLOCK = 1024 * 1024
_MAX_HEADER = 100 * 1024 * 1024


def header_bytes(data_len: int, metadata: dict[str, str] | None) -> bytes:
    """The padded JSON header describing one U8 tensor of ``data_len`` bytes."""
    header: dict[str, object] = {}
    if metadata is not None:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    header["data"] = {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]}
    raw = json.dumps(header, separators=(",", ":")).encode()
    return raw + b" " * (-len(raw) % 8)


def _layout(size_bytes: int, metadata: dict[str, str] | None) -> tuple[bytes, int]:
    """Header and data length so that 8 + header + data == size_bytes exactly."""
    data_len = max(size_bytes - 8 - len(header_bytes(0, metadata)), 0)
    for _ in range(8):  # the header grows with the digits of data_len; settles in a step or two
        header = header_bytes(data_len, metadata)
        wanted = size_bytes - 8 - len(header)
        if wanted == data_len:
            return header, data_len
        data_len = max(wanted, 0)
    raise ValueError(
        f"make_safetensors: size_bytes={size_bytes} is too small for the header "
        f"(use at least {8 + len(header_bytes(0, metadata))} bytes)"
    )


def make_safetensors(
    path: str | os.PathLike[str],
    size_bytes: int,
    metadata: dict[str, str] | None = None,
    content: str | None = None,
) -> Path:
    """Write a valid safetensors file of exactly ``size_bytes`` bytes; return its path."""
    path = Path(path)
    header, data_len = _layout(size_bytes, metadata)
    if content is None:
        content = "pattern" if data_len <= PATTERN_LIMIT else "allocated"
    if content not in ("pattern", "allocated", "sparse"):
        raise ValueError(f"make_safetensors: content={content!r} is not pattern/allocated/sparse")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        if content == "pattern":
            _write_pattern(f, data_len, path.name)
            return path
        start = f.tell()
        f.truncate(start + data_len)
        if content == "allocated" and data_len:
            # tmpfs/FUSE without fallocate: the sparse file reads the same
            with contextlib.suppress(OSError):
                os.posix_fallocate(f.fileno(), start, data_len)
    return path


def _write_pattern(f: object, data_len: int, name: str) -> None:
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    base = random.Random(seed).randbytes(_BLOCK)  # noqa: S311 - test data, not secrets
    written = 0
    index = 0
    while written < data_len:
        block = struct.pack("<QQ", seed, index) + base[16:]
        n = min(_BLOCK, data_len - written)
        f.write(block[:n])  # type: ignore[attr-defined]
        written += n
        index += 1


def read_header(path: str | os.PathLike[str], max_size: int = _MAX_HEADER) -> bytes | None:
    """The raw JSON header of a safetensors file, or None when it is longer than max_size."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        if length > max_size:
            return None
        return f.read(length)


def data_offset(path: str | os.PathLike[str]) -> int:
    """Where the tensor data starts (8 + header length)."""
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
    return 8 + int(length)
