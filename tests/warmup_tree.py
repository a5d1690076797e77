"""A models tree on the "volume", a cache and a run dir under one root, for warmup tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

from comfy_init import settings


class Tree:
    """``ComfyUI/models``, ``cache`` and ``run`` under ``root``, and settings pointing at them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.comfyui = root / "ComfyUI"
        self.models = self.comfyui / "models"
        self.cache = root / "cache"
        self.run = root / "run"
        self.models.mkdir(parents=True, exist_ok=True)
        self.env = {
            "COMFYUI_PATH": str(self.comfyui),
            "CACHE_PATH": str(self.cache),
            "RUN_DIR": str(self.run),
            "COMFY_INIT_CONFIG_DIR": str(root / "etc"),
            "CACHE_RESERVE_MB": "0",
            "WARMUP_CHUNK_MB": "1",
        }

    def model(self, rel: str, size: int, seed: int = 0) -> Path:
        """A model file of ``size`` bytes whose content differs per name and seed."""
        path = self.models / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        block = hashlib.sha256(f"{rel}{seed}".encode()).digest() * 2048
        path.write_bytes((block * (size // len(block) + 1))[:size])
        return path

    def config(self, text: str) -> Path:
        path = self.comfyui / "warmup_models.conf"
        path.write_text(text)
        return path

    def settings(self, **extra: str) -> settings.Settings:
        return settings.from_env({**self.env, **extra})
