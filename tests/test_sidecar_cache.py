"""Cache metrics: filesystem size and free space, model files and bytes per type, page-cache
residency, from a temp tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from prometheus_client.registry import CollectorRegistry

from comfy_init.sidecar.cache_source import CacheSource, TypeUsage, scan_cache
from comfy_init.sidecar.collector import SidecarCollector, Source


def layout(root: Path) -> None:
    (root / "checkpoints" / "SDXL").mkdir(parents=True)
    (root / "loras").mkdir()
    (root / "vae").mkdir()
    (root / "checkpoints" / "a.safetensors").write_bytes(b"a" * 3000)
    (root / "checkpoints" / "SDXL" / "b.ckpt").write_bytes(b"b" * 5000)
    (root / "checkpoints" / "notes.txt").write_bytes(b"not a model")
    (root / "checkpoints" / ".a.safetensors.1f2e.comfy-init-partial").write_bytes(b"p" * 99)
    (root / "loras" / "l.pt").write_bytes(b"l" * 700)
    (root / "stray.safetensors").write_bytes(b"s")  # no type: not counted


def test_scan_counts_model_files_bytes_and_residency_per_type(tmp_path: Path) -> None:
    layout(tmp_path)
    asked: list[Path] = []

    def resident(path: Path) -> tuple[int, int]:
        size = path.stat().st_size
        return size // 2, size

    scan = scan_cache(tmp_path, asked.append, resident=resident)
    assert scan.by_type == {
        "checkpoints": TypeUsage(files=2, bytes=8000, resident_bytes=4000),
        "loras": TypeUsage(files=1, bytes=700, resident_bytes=350),
        "vae": TypeUsage(files=0, bytes=0, resident_bytes=0),  # an empty type still shows
    }
    assert sorted(p.name for p in asked) == ["a.safetensors", "b.ckpt", "l.pt"]


def test_scan_uses_the_kernels_residency_by_default(tmp_path: Path) -> None:
    (tmp_path / "loras").mkdir()
    path = tmp_path / "loras" / "hot.safetensors"
    path.write_bytes(os.urandom(64 * 1024))
    path.read_bytes()  # just written and read: in the page cache
    usage = scan_cache(tmp_path).by_type["loras"]
    assert usage.bytes == 64 * 1024
    assert 0 < usage.resident_bytes <= usage.bytes


def test_scan_of_a_missing_cache_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        scan_cache(tmp_path / "absent")


def registry_of(source: CacheSource) -> CollectorRegistry:
    reg = CollectorRegistry()
    reg.register(SidecarCollector([Source("cache", source.collect)]))
    return reg


def test_cache_source_serves_filesystem_space_and_the_last_scan(tmp_path: Path) -> None:
    layout(tmp_path)
    source = CacheSource(tmp_path)
    reg = registry_of(source)
    st = os.statvfs(tmp_path)
    assert reg.get_sample_value("comfyinit_cache_filesystem_size_bytes") == st.f_blocks * (
        st.f_frsize
    )
    assert reg.get_sample_value("comfyinit_cache_filesystem_free_bytes") is not None
    assert reg.get_sample_value("comfyinit_cache_files", {"type": "checkpoints"}) is None
    source.rescan()
    assert reg.get_sample_value("comfyinit_cache_files", {"type": "checkpoints"}) == 2
    assert reg.get_sample_value("comfyinit_cache_model_bytes", {"type": "loras"}) == 700
    resident = reg.get_sample_value("comfyinit_cache_resident_bytes", {"type": "loras"})
    assert resident is not None
    assert 0 <= resident <= 700
    assert reg.get_sample_value("comfyinit_source_up", {"source": "cache"}) == 1


def test_a_missing_cache_flags_the_source_down_without_failing_the_scrape(
    tmp_path: Path,
) -> None:
    source = CacheSource(tmp_path / "absent")
    source.rescan()
    reg = registry_of(source)
    assert reg.get_sample_value("comfyinit_source_up", {"source": "cache"}) == 0
    assert reg.get_sample_value("comfyinit_cache_filesystem_size_bytes") is None
    assert reg.get_sample_value("comfyinit_build_info", {"version": "0.1.0"}) == 1
