"""The end-to-end benchmark's models: real safetensors files, made once per machine.

``plan(total_bytes)`` is pure: a checkpoint (half of the total), a diffusion model (a third)
and a LoRA (the rest), each cut into tensors of a few sizes the way real checkpoints are
(many small tensors, some large ones).  ``ensure(root, models)`` writes them under
``root/models`` unless a previous run left exactly these files (a stamp records the plan).

A file is valid safetensors: 8-byte little-endian header length, a JSON header padded with
spaces to 8 bytes, then each tensor's bytes at its ``data_offsets``; the tensors' bytes are
``bench.model_files`` filler.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.model_files import made_before, write_filler, write_stamp

MIB = 1024 * 1024
# Tensor sizes cycled through a model (bytes): norms and biases, attention, MLP, embeddings.
TENSOR_SIZES = (64 * 1024, 2 * MIB, 8 * MIB, 24 * MIB, 4 * MIB, 512 * 1024)


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
    write_filler(path, data, seed=model.rel, prefix=struct.pack("<Q", len(header)) + header)


def ensure(root: Path, models: list[Model]) -> None:
    """The models under ``root/models``, written now unless they are already there."""
    stamp = root / "e2e-models.json"
    wanted = json.loads(json.dumps([{**asdict(m), "size": m.size} for m in models]))
    if made_before(stamp, wanted, {root / "models" / m.rel: m.size for m in models}):
        return
    stamp.unlink(missing_ok=True)
    for m in models:
        write_model(root / "models" / m.rel, m)
    write_stamp(stamp, wanted)
