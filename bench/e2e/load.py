"""Loading a model the way ComfyUI does, and making the page cache cold or warm for it.

ComfyUI's ``load_torch_file`` opens a safetensors file with ``safetensors.safe_open`` (the
file is memory-mapped) and calls ``get_tensor`` for every key, which copies each tensor out
of the map into memory of its own.  ``load_in_process`` does exactly that with the real
``safetensors`` library (numpy tensors: no torch here); ``load_via_comfyui`` asks the running
ComfyUI stand-in to do the same (``/standin/load?…&tensors=1``: mmap, then a copy of each
tensor's byte range) and says whether the file it resolved was the cache's or the volume's.

Cold page cache: ``sync; echo 3 > /proc/sys/vm/drop_caches`` (``bench.caches.drop_all``,
``POSIX_FADV_DONTNEED`` per file where that is refused).  For the slow volume the backing
files are then read back into the page cache, so that a volume read is shaped by the FUSE
layer's latency and rates alone, not by the disk under the stand-in; the mount's own pages
stay dropped.  ``Target.volume_bytes`` lets a run prove that a cold read went through the
throttled path (the FUSE server's byte counter grows by the file's size).
"""

from __future__ import annotations

import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy  # noqa: F401 - imported here, not inside the first timed load
from safetensors import safe_open

from bench import caches
from bench.e2e.models import Model
from bench.slowfs import SlowVolume
from harness.boots import port
from harness.loopback import http
from harness.pid1 import Pid1

LOAD_TIMEOUT = 600.0


@dataclass(frozen=True)
class Load:
    seconds: float  # wall time of the whole load, as the caller waited for it
    nbytes: int  # file size
    tensors: int
    served_from: str  # "cache" or "volume"
    volume_bytes: int | None = None  # bytes the FUSE server served during the load


@dataclass
class Target:
    """Where ComfyUI's install (and so the models) lives: plain local disk or the slow volume."""

    name: str
    comfyui: Path  # COMFYUI_PATH as comfy-init sees it (the mount for the volume)
    backing: Path  # the same tree on local disk
    volume: SlowVolume | None = None

    def model_path(self, model: Model) -> Path:
        return self.comfyui / "models" / model.rel

    def cold(self, models: list[Model], cache: Path | None = None) -> str:
        """Empty the page cache for a cold run; return how it was done."""
        files = [self.backing / "models" / m.rel for m in models]
        if cache is not None:
            files += [p for m in models if (p := cache / m.rel).exists()]
        how = caches.drop_all(fallback=files)
        if self.volume is not None:
            caches.warm_files(self.backing / "models" / m.rel for m in models)
            caches.drop_files(self.model_path(m) for m in models)
            how += " + backing files re-read + fadvise DONTNEED on the mount"
        return how

    def volume_bytes(self) -> int | None:
        return None if self.volume is None else int(self.volume.stats()["read_bytes"])


def load_in_process(path: Path, served_from: str, target: Target | None = None) -> Load:
    """Load ``path`` with ``safetensors.safe_open`` + ``get_tensor`` for every key."""
    before = target.volume_bytes() if target is not None else None
    started = time.perf_counter()
    state_dict: dict[str, Any] = {}
    with safe_open(str(path), framework="np") as f:
        for key in f.keys():  # noqa: SIM118 - safe_open is not a mapping
            state_dict[key] = f.get_tensor(key)
    nbytes = sum(int(t.nbytes) for t in state_dict.values())
    seconds = time.perf_counter() - started
    count = len(state_dict)
    del state_dict
    after = target.volume_bytes() if target is not None else None
    served = after - before if after is not None and before is not None else None
    if nbytes <= 0:
        raise RuntimeError(f"load: {path} has no tensor data")
    return Load(seconds, path.stat().st_size, count, served_from, served)


def load_via_comfyui(boot: Pid1, model: Model, cache: Path) -> Load:
    """Ask ComfyUI (the stand-in) to load ``model``; where it came from is the path it
    resolved: under ``cache`` or not."""
    query = urllib.parse.urlencode(
        {"folder": model.folder, "filename": model.filename, "tensors": "1"}
    )
    started = time.perf_counter()
    status, body = http(port(boot), f"/standin/load?{query}", method="POST", timeout=LOAD_TIMEOUT)
    seconds = time.perf_counter() - started
    if status != 200 or not isinstance(body, dict) or "tensors" not in body:
        raise RuntimeError(f"load of {model.rel} through ComfyUI: HTTP {status}: {body}")
    where = "cache" if Path(body["path"]).is_relative_to(cache) else "volume"
    return Load(seconds, int(body["bytes"]), int(body["tensors"]), where)
