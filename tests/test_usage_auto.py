"""``@auto``: recorded models located on the volume, filtered and filled into the budget."""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from comfy_init.manifest.expand import ModelFile, SearchPath
from comfy_init.manifest.lines import Entry
from comfy_init.usage import auto, journal
from comfy_init.usage.records import DAY_SECONDS, Open

NOW = 1_790_000_000.0
LINE = Entry("", "", "w.conf:3", auto=True)


@given(name=st.text(min_size=1, max_size=20), other=st.text(min_size=1, max_size=20))
def test_an_escaped_name_matches_itself_and_nothing_else(name: str, other: str) -> None:
    pattern = auto.escape(name)
    assert fnmatchcase(name, pattern)
    assert fnmatchcase(other, pattern) == (other == name)


def model(models: Path, rel: str, size: int) -> Path:
    path = models / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"m" * size)
    return path


def record(usage: Path, pod: str, rel: str, times: int, age: float = 60.0) -> None:
    type_, name = rel.split("/", 1)
    journal.append(
        journal.path_for(usage, pod),
        [Open(NOW - age - i, type_, name, 1, 1, "volume") for i in range(times)],
    )


def never_cached(_f: ModelFile) -> bool:
    return False


def test_plan_keeps_what_is_on_the_volume_and_not_listed_and_fills_the_budget(
    tmp_path: Path,
) -> None:
    models, usage = tmp_path / "models", tmp_path / "usage"
    model(models, "checkpoints/top.safetensors", 500)
    model(models, "checkpoints/big [v2].safetensors", 900)
    model(models, "loras/small.safetensors", 100)
    model(models, "loras/listed.safetensors", 100)
    outside = model(tmp_path / "elsewhere", "x.safetensors", 10)
    os.symlink(outside, models / "loras" / "link.safetensors")
    record(usage, "a", "checkpoints/top.safetensors", 9)
    record(usage, "b", "checkpoints/big [v2].safetensors", 7)
    record(usage, "b", "loras/listed.safetensors", 6)
    record(usage, "a", "loras/small.safetensors", 5)
    record(usage, "a", "loras/deleted.safetensors", 4)
    record(usage, "a", "loras/link.safetensors", 3)
    record(usage, "a", "loras/../../../etc/passwd", 2)
    record(usage, "c", "loras/old.safetensors", 50, age=30 * DAY_SECONDS)
    os.utime(journal.path_for(usage, "c"), (NOW - 30 * DAY_SECONDS,) * 2)

    learned = auto.learn(usage, 14, NOW, prune=True)
    assert learned.pruned == 1  # pod c was silent for longer than the window
    assert not journal.path_for(usage, "c").exists()
    plan = auto.plan(
        learned,
        search=SearchPath(models),
        line=LINE,
        listed={("loras", "listed.safetensors")},
        budget=auto.Budget(max_bytes=None, free_bytes=2000, reserve_bytes=1000, before_bytes=300),
        is_cached=never_cached,
    )
    assert [c.usage.text for c in plan.candidates] == [
        "checkpoints/top.safetensors",
        "checkpoints/big [v2].safetensors",
        "loras/small.safetensors",
    ]
    # 700 bytes of room: top (500) fits, big (900) does not, small (100) still does
    assert [f"{f.type}/{f.name}" for f in plan.files] == [
        "checkpoints/top.safetensors",
        "loras/small.safetensors",
    ]
    assert {f.entry for f in plan.files} == {LINE}  # each file belongs to the @auto line
    assert auto.counts(plan) == {auto.LISTED: 1, auto.GONE: 1, auto.OUTSIDE: 2}


def test_a_cached_model_needs_no_space_and_the_cap_bounds_the_total(tmp_path: Path) -> None:
    models, usage = tmp_path / "models", tmp_path / "usage"
    model(models, "checkpoints/a.safetensors", 800)
    model(models, "checkpoints/b.safetensors", 300)
    record(usage, "p", "checkpoints/a.safetensors", 5)
    record(usage, "p", "checkpoints/b.safetensors", 2)
    learned = auto.learn(usage, 14, NOW)

    def cached_a(f: ModelFile) -> bool:
        return f.name == "a.safetensors"

    def files(budget: auto.Budget) -> list[str]:
        plan = auto.plan(learned, search=SearchPath(models), line=LINE, listed=set(),
                         budget=budget, is_cached=cached_a)  # fmt: skip
        return [f.name for f in plan.files]

    assert files(auto.Budget(None, free_bytes=300, reserve_bytes=0)) == [
        "a.safetensors",
        "b.safetensors",
    ]
    assert files(auto.Budget(1000, free_bytes=10**9, reserve_bytes=0)) == ["a.safetensors"]
    assert files(auto.Budget(None, free_bytes=299, reserve_bytes=0)) == ["a.safetensors"]


def test_no_journal_means_nothing_to_warm(tmp_path: Path) -> None:
    learned = auto.learn(tmp_path / "none", 14, NOW)
    plan = auto.plan(learned, search=SearchPath(tmp_path), line=LINE, listed=set(),
                     budget=auto.Budget(None, 10**12, 0), is_cached=never_cached)  # fmt: skip
    assert (plan.candidates, plan.files, learned.pruned) == ([], [], 0)
