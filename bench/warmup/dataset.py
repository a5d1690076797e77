"""The warmup benchmark's data set: a few large checkpoints and many small models, made once.

``layout(spec)`` is pure: it names every file and its size (small sizes spread evenly
around the mean, in several type folders and subfolders, as a real models tree).
``ensure(root, spec)`` writes the files under ``root/models`` unless a previous run left
exactly these files there (a ``dataset.json`` stamp records the spec), so the slow part
happens once per machine (``bench.model_files``: pseudo-random filler, written once).
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.model_files import made_before, write_filler, write_stamp
from bench.slowfs import MB

BIG_TYPES = ("checkpoints", "diffusion_models", "unet")
SMALL_TYPES = ("loras", "vae", "embeddings", "controlnet", "upscale_models")


@dataclass(frozen=True)
class Spec:
    big_count: int = 3
    big_bytes: int = 1800 * MB
    small_count: int = 97
    small_bytes: int = 3 * MB  # mean size of a small file

    @property
    def files(self) -> int:
        return self.big_count + self.small_count


SMOKE = Spec(big_count=2, big_bytes=24 * MB, small_count=8, small_bytes=300_000)


@dataclass(frozen=True)
class ModelFile:
    rel: str  # path below models/, e.g. "checkpoints/big-0.safetensors"
    size: int


def layout(spec: Spec) -> list[ModelFile]:
    """Every file of the data set, largest first, with its size."""
    files = [
        ModelFile(f"{BIG_TYPES[i % len(BIG_TYPES)]}/big-{i}.safetensors", spec.big_bytes)
        for i in range(spec.big_count)
    ]
    for i in range(spec.small_count):
        kind = SMALL_TYPES[i % len(SMALL_TYPES)]
        sub = f"set-{i % 3}/" if kind == "loras" else ""
        # Sizes from 1/4 to 7/4 of the mean, evenly, so the total is count * mean.
        spread = (i % 7) / 6 if spec.small_count > 1 else 0.5
        size = max(1, int(spec.small_bytes * (0.25 + 1.5 * spread)))
        files.append(ModelFile(f"{kind}/{sub}small-{i:03d}.safetensors", size))
    return files


def total_bytes(files: list[ModelFile]) -> int:
    return sum(f.size for f in files)


def config_text(files: list[ModelFile]) -> str:
    """A warmup config that names every file: one ``<type>/**`` line per type, in order."""
    types = list(dict.fromkeys(f.rel.split("/", 1)[0] for f in files))
    return "# benchmark data set: every file of every type\n" + "".join(f"{t}/**\n" for t in types)


def ensure(root: Path, spec: Spec) -> list[ModelFile]:
    """The data set under ``root/models``, written now unless it is already there."""
    files = layout(spec)
    stamp = root / "dataset.json"
    wanted = {"spec": asdict(spec), "files": [asdict(f) for f in files]}
    models = root / "models"
    if made_before(stamp, wanted, {models / f.rel: f.size for f in files}):
        return files
    stamp.unlink(missing_ok=True)
    shutil.rmtree(models, ignore_errors=True)  # no file of an older data set stays behind
    for f in files:
        write_filler(models / f.rel, f.size, seed=f.rel)
    write_stamp(stamp, wanted)
    return files
