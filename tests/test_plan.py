"""Planning: which files are cache hits, where copies go, whether a copy fits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfy_init.manifest.expand import ModelFile
from comfy_init.manifest.lines import Entry
from comfy_init.warmup.plan import CacheEntry, Step, dest_for, fits, plan, same_mtime

CACHE = Path("/root/fast_cache")
T = 1_700_000_000_123_456_789  # an mtime with nanoseconds


def model(name: str, size: int = 100, mtime_ns: int = T, type_: str = "checkpoints") -> ModelFile:
    entry = Entry(type_, name, "w.conf:1")
    source = Path("/workspace/ComfyUI/models", type_, name)
    return ModelFile(type_, name, source, size, mtime_ns, entry)


def test_dest_mirrors_type_and_subfolders_under_the_cache() -> None:
    assert dest_for(CACHE, model("SDXL/base/x.safetensors")) == Path(
        "/root/fast_cache/checkpoints/SDXL/base/x.safetensors"
    )
    assert dest_for(CACHE, model("flux.sft", type_="unet")) == CACHE / "unet" / "flux.sft"


def test_plan_is_a_hit_only_when_size_and_mtime_both_match() -> None:
    files = [model("same.pt"), model("grown.pt"), model("touched.pt"), model("new.pt")]
    existing = {
        CACHE / "checkpoints" / "same.pt": CacheEntry(100, T),
        CACHE / "checkpoints" / "grown.pt": CacheEntry(99, T),
        CACHE / "checkpoints" / "touched.pt": CacheEntry(100, T + 1),
        CACHE / "checkpoints" / "new.pt": None,
    }
    assert [(s.file.name, s.action) for s in plan(files, CACHE, existing)] == [
        ("same.pt", "hit"),
        ("grown.pt", "copy"),
        ("touched.pt", "copy"),
        ("new.pt", "copy"),
    ]


def test_plan_copies_a_file_the_mapping_does_not_mention() -> None:
    [step] = plan([model("x.pt")], CACHE, {})
    assert step == Step(model("x.pt"), CACHE / "checkpoints" / "x.pt", "copy")


@pytest.mark.parametrize(
    ("cache_mtime_ns", "hit"),
    [
        (T, True),  # exact nanoseconds kept
        (T // 1000 * 1000, True),  # cache keeps microseconds: truncated copy matches
        (T // 10**9 * 10**9, True),  # cache keeps seconds
        (T // 1000 * 1000 + 1000, False),  # the next microsecond is another time
        (T // 10**9 * 10**9 + 10**9, False),  # the next second is another time
        (T // 10**9 * 10**9 - 10**9, False),  # the previous second too
        (T - 1, False),  # a nanosecond off on a nanosecond filesystem
    ],
)
def test_plan_compares_mtime_at_the_cache_filesystems_granularity(
    cache_mtime_ns: int, hit: bool
) -> None:
    f = model("x.pt")
    [step] = plan([f], CACHE, {dest_for(CACHE, f): CacheEntry(100, cache_mtime_ns)})
    assert (step.action == "hit") is hit


def test_same_mtime_accepts_whole_second_sources_on_any_filesystem() -> None:
    assert same_mtime(5 * 10**9, 5 * 10**9)
    assert not same_mtime(5 * 10**9, 5 * 10**9 + 1)
    assert not same_mtime(5 * 10**9 + 7, 5 * 10**9 + 1000)


def test_plan_keeps_priority_order_and_plans_a_destination_once() -> None:
    first = model("a.pt", size=1)
    again = model("a.pt", size=2)  # same destination, later line
    steps = plan([model("z.pt"), first, again, model("b.pt")], CACHE, {})
    assert [(s.file.name, s.file.size) for s in steps] == [
        ("z.pt", 100),
        ("a.pt", 1),
        ("b.pt", 100),
    ]


def test_fits_keeps_the_reserve_free_to_the_byte() -> None:
    assert fits(size=400, free_bytes=1400, reserve_bytes=1000)
    assert not fits(size=401, free_bytes=1400, reserve_bytes=1000)
    assert fits(size=0, free_bytes=1000, reserve_bytes=1000)
    assert not fits(size=0, free_bytes=999, reserve_bytes=1000)


def test_fits_does_not_count_the_stale_copy_being_replaced_as_free() -> None:
    # Both copies exist until the rename, so a 600-byte stale copy frees nothing in time.
    assert not fits(size=500, free_bytes=1400, reserve_bytes=1000, existing_dest_size=600)
    assert fits(size=400, free_bytes=1400, reserve_bytes=1000, existing_dest_size=600)


def test_fits_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        fits(size=-1, free_bytes=10, reserve_bytes=0)


files_st = st.lists(
    st.builds(
        model,
        name=st.sampled_from(["a.pt", "b.pt", "SDXL/c.pt", "d/e/f.pt"]),
        size=st.integers(0, 3),
        mtime_ns=st.sampled_from([T, T // 1000 * 1000, T // 10**9 * 10**9, T + 1]),
        type_=st.sampled_from(["loras", "unet"]),
    ),
    max_size=10,
)
caches_st = st.dictionaries(
    st.sampled_from(["loras/a.pt", "unet/b.pt", "loras/SDXL/c.pt", "unet/d/e/f.pt"]),
    st.none()
    | st.builds(CacheEntry, st.integers(0, 3), st.sampled_from([T, T // 1000 * 1000, T - 7])),
)


@given(files=files_st, cache=caches_st)
def test_plan_never_copies_a_destination_twice_and_keeps_first_occurrence_order(
    files: list[ModelFile], cache: dict[str, CacheEntry | None]
) -> None:
    existing = {CACHE / k: v for k, v in cache.items()}
    steps = plan(files, CACHE, existing)
    dests = [s.dest for s in steps]
    assert len(dests) == len(set(dests))
    firsts: list[tuple[Path, ModelFile]] = []
    for f in files:
        if dest_for(CACHE, f) not in [d for d, _ in firsts]:
            firsts.append((dest_for(CACHE, f), f))
    assert [(s.dest, s.file) for s in steps] == firsts
    for s in steps:
        cached = existing.get(s.dest)
        up_to_date = (
            cached is not None
            and cached.size == s.file.size
            and same_mtime(s.file.mtime_ns, cached.mtime_ns)
        )
        assert s.action == ("hit" if up_to_date else "copy")
