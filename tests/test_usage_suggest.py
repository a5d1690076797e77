"""``warmup --suggest``: the config text and JSON made from ranked, budgeted candidates."""

from __future__ import annotations

from comfy_init.usage import ranking, suggest
from comfy_init.usage.ranking import Candidate, Usage

DAY = 1_790_000_000.0  # 2026-09-21 (UTC)


def human(n: int | None) -> str:
    return "-" if n is None else f"{n} B"


def candidate(name: str, opens: int, size: int, pods: str = "p", cached: bool = False) -> Candidate:
    u = Usage("checkpoints", name, opens, float(opens), DAY, frozenset(pods), size)
    return Candidate(u, size, cached)


def test_suggestion_lists_most_used_first_and_comments_out_what_does_not_fit() -> None:
    ranked = [candidate("a.safetensors", 9, 600, "pq"), candidate("big.safetensors", 5, 900),
              candidate("c.safetensors", 2, 300, cached=True)]  # fmt: skip
    sel = ranking.select(ranked, max_bytes=None, space_bytes=700)
    data = suggest.suggestion(
        ranked, sel, usage_dir="/vol/ComfyUI/.comfy-init/usage", window_days=14,
        free_bytes=1700, reserve_bytes=1000, max_bytes=None,
        skipped={"torn": 1, "corrupt": 0, "future": 2}, dropped={"not on the volume": 1},
    )  # fmt: skip
    assert [(m["entry"], m["fits"]) for m in data["models"]] == [
        ("checkpoints/a.safetensors", True),
        ("checkpoints/big.safetensors", False),
        ("checkpoints/c.safetensors", True),
    ]
    assert (data["pods"], data["total_bytes"], data["fits_bytes"]) == (2, 1800, 900)
    text = suggest.render(data, human)
    lines = text.splitlines()
    assert (
        lines[0]
        == "# warmup config suggested from the usage journals in /vol/ComfyUI/.comfy-init/usage"
    )
    assert lines[1] == "# 3 models opened by 2 pods in the last 14 days, most used first"
    assert lines[2].startswith("checkpoints/a.safetensors  ")
    assert lines[2].endswith("# 9 opens, last used 2026-09-21, 2 pods, 600 B")
    assert lines[3].startswith("# checkpoints/big.safetensors")
    assert lines[3].endswith("1 pods, 900 B, does not fit")
    assert lines[4].startswith("checkpoints/c.safetensors")
    assert lines[5] == "# total 900 B of 1800 B used; cache free 1700 B less 1000 B reserve"
    assert (
        lines[6]
        == "# left out: 2 future journal lines, 1 torn journal lines, 1 models not on the volume"
    )
    # the config lines (not comments) are exactly the models that fit
    assert [ln.split()[0] for ln in lines if not ln.startswith("#")] == [
        "checkpoints/a.safetensors",
        "checkpoints/c.safetensors",
    ]


def test_an_empty_suggestion_is_only_comments() -> None:
    data = suggest.suggestion(
        [], ranking.Selection(), usage_dir="/u", window_days=7, free_bytes=10,
        reserve_bytes=0, max_bytes=5, skipped={}, dropped={},
    )  # fmt: skip
    text = suggest.render(data, human)
    assert all(line.startswith("#") for line in text.splitlines())
    assert "0 models opened by 0 pods in the last 7 days" in text
    assert text.endswith("WARMUP_AUTO_MAX_MB 5 B")
