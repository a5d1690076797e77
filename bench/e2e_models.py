"""The end-to-end benchmark's models: real safetensors files, made once per machine.

``plan(total_bytes)`` is pure: a checkpoint (half of the total), a diffusion model (a third)
and a LoRA (the rest), each cut into tensors of a few sizes the way real checkpoints are
(many small tensors, some large ones).  ``ensure(root, models)`` writes them under
``root/models`` unless a previous run left exactly these files (a stamp records the plan).

A file is valid safetensors: 8-byte little-endian header length, a JSON header padded with
spaces to 8 bytes, then each tensor's bytes at its ``data_offsets``.  Content is
pseudo-random, different in every block of every file, so no filesystem can skip zeros and
a copy that moves a block reads differently.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

MIB = 1024 * 1024
# Tensor sizes cycled through a model (bytes): norms and biases, attention, MLP, embeddings.
TENSOR_SIZES = (64 * 1024, 2 * MIB, 8 * MIB, 24 * MIB, 4 * MIB, 512 * 1024)
BLOCK = 4 * MIB


@dataclass(frozen=True)
class Tensor:
    name: str
    nbytes: int  # F16 elements * 2


@dataclass(frozen=True)
class Model:
    folder: str  # ComfyUI folder name (and directory under models/)
    filename: str
    tensors: tuple[Tensor, ...]

    @property
    def rel(self) -> str:
        return f"{self.folder}/{self.filename}"

    def header(self) -> bytes:
        """The padded JSON header: F16 tensors, one after the other."""
        entries: dict[str, object] = {"__metadata__": {"format": "pt", "bench": self.rel}}
        offset = 0
        for t in self.tensors:
            entries[t.name] = {
                "dtype": "F16",
                "shape": [t.nbytes // 2],
                "data_offsets": [offset, offset + t.nbytes],
            }
            offset += t.nbytes
        raw = json.dumps(entries, separators=(",", ":")).encode()
        return raw + b" " * (-len(raw) % 8)

    @property
    def size(self) -> int:
        """Bytes of the whole file."""
        return 8 + len(self.header()) + sum(t.nbytes for t in self.tensors)


def _tensors(prefix: str, nbytes: int) -> tuple[Tensor, ...]:
    out: list[Tensor] = []
    left = nbytes
    i = 0
    while left > 0:
        n = min(TENSOR_SIZES[i % len(TENSOR_SIZES)], left)
        n -= n % 2  # F16: whole elements
        if n <= 0:
            break
        out.append(Tensor(f"{prefix}.blocks.{i // len(TENSOR_SIZES)}.w{i % len(TENSOR_SIZES)}", n))
        left -= n
        i += 1
    return tuple(out)


def plan(total_bytes: int) -> list[Model]:
    """The models to make, largest first: about ``total_bytes`` of tensors in all."""
    shares = (
        ("checkpoints", "bench-checkpoint.safetensors", "model.diffusion_model", 1 / 2),
        ("diffusion_models", "bench-diffusion.safetensors", "diffusion", 1 / 3),
        ("loras", "bench-lora.safetensors", "lora_unet", 1 / 6),
    )
    return [
        Model(folder, name, _tensors(prefix, int(total_bytes * share)))
        for folder, name, prefix, share in shares
    ]


def config_text(models: list[Model]) -> str:
    """A warmup config naming every model, largest first (the warmup's priority order)."""
    return "# end-to-end benchmark models\n" + "".join(f"{m.rel}\n" for m in models)


def write_model(path: Path, model: Model) -> None:
    """Write ``model`` to ``path`` (through a temp name, so a half file is never seen)."""
    header = model.header()
    data = sum(t.nbytes for t in model.tensors)
    seed = int.from_bytes(hashlib.sha256(model.rel.encode()).digest()[:8], "little")
    block = bytearray(random.Random(seed).randbytes(BLOCK))  # noqa: S311 - filler, not secrets
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(struct.pack("<Q", len(header)))
        fh.write(header)
        done = 0
        while done < data:
            block[:16] = struct.pack("<QQ", seed, done)  # every block of every file differs
            n = min(BLOCK, data - done)
            fh.write(memoryview(block)[:n])
            done += n
    os.replace(tmp, path)


def ensure(root: Path, models: list[Model]) -> None:
    """The models under ``root/models``, written now unless they are already there."""
    stamp = root / "e2e-models.json"
    wanted = json.loads(json.dumps([{**asdict(m), "size": m.size} for m in models]))
    try:
        same = json.loads(stamp.read_text(encoding="utf-8")) == wanted and all(
            (root / "models" / m.rel).stat().st_size == m.size for m in models
        )
    except (FileNotFoundError, json.JSONDecodeError):
        same = False
    if same:
        return
    stamp.unlink(missing_ok=True)
    for m in models:
        write_model(root / "models" / m.rel, m)
    os.sync()
    stamp.write_text(json.dumps(wanted) + "\n", encoding="utf-8")
