"""The ranking of recorded models, the budget selection and the copy order within @auto."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfy_init.usage import journal, ranking, records
from comfy_init.usage.ranking import Candidate, Usage
from comfy_init.usage.records import DAY_SECONDS, Boot, DayTotal, Open, Record

NOW = 1_790_000_000.0 + 12 * 3600
HL = ranking.half_life(14)


def opened(t: float, name: str, size: int = 100, type_: str = "checkpoints") -> Open:
    return Open(t, type_, name, size, 1, "volume")


def names_of(ranked: list[Usage]) -> list[str]:
    return [u.name for u in ranked]


def test_an_open_weighs_one_now_and_half_one_half_life_ago() -> None:
    assert ranking.weight(0, HL) == 1.0
    assert ranking.weight(HL, HL) == 0.5
    assert ranking.weight(3 * HL, HL) == 0.125
    assert ranking.weight(-5, HL) == 1.0  # a clock a little ahead is not a bonus


def test_more_opens_rank_first_and_recent_beats_old_at_equal_counts() -> None:
    journals: dict[str, list[Record]] = {
        "a": [opened(NOW - 60, "often"), opened(NOW - 50, "often"), opened(NOW - 40, "often")],
        "b": [
            opened(NOW - 5 * DAY_SECONDS, "old"),
            opened(NOW - 4 * DAY_SECONDS, "old"),
            opened(NOW - 3600, "new"),
            opened(NOW - 1800, "new"),
        ],
    }
    ranked = ranking.rank(journals, NOW, 14)
    assert names_of(ranked) == ["often", "new", "old"]
    often = ranked[0]
    assert often.opens == 3
    assert often.pods == frozenset({"a"})
    assert often.score == pytest.approx(3, rel=1e-3)


def test_opens_outside_the_window_or_in_the_future_do_not_count() -> None:
    journals: dict[str, list[Record]] = {
        "a": [
            opened(NOW - 15 * DAY_SECONDS, "expired"),
            opened(NOW + 3600, "future"),
            opened(NOW - 13 * DAY_SECONDS, "kept"),
        ],
    }
    assert names_of(ranking.rank(journals, NOW, 14)) == ["kept"]
    assert ranking.rank(journals, NOW, 1) == []


def test_pods_and_size_come_from_every_journal_the_size_from_the_last_open() -> None:
    journals: dict[str, list[Record]] = {
        "a": [opened(NOW - 100, "m", size=10)],
        "b": [opened(NOW - 50, "m", size=30)],
        "c": [opened(NOW - 200, "m", size=20)],
    }
    (u,) = ranking.rank(journals, NOW, 14)
    assert (u.opens, u.size, u.last, u.pods) == (3, 30, NOW - 50, frozenset("abc"))


def test_a_day_total_counts_its_opens_at_the_age_of_its_last() -> None:
    day = records.day_of(NOW - 2 * DAY_SECONDS)
    total = DayTotal(day, "loras", "x", 7, 1, 4, NOW - 2 * DAY_SECONDS)
    (u,) = ranking.rank({"a": [total]}, NOW, 14)
    assert u.opens == 4
    assert u.score == pytest.approx(4 * ranking.weight(2 * DAY_SECONDS, HL))


@settings(max_examples=100, deadline=None)
@given(
    ages=st.lists(
        st.tuples(st.floats(0, 13 * DAY_SECONDS), st.sampled_from(["a", "b", "c"])), max_size=80
    ),
    keep_recent=st.integers(0, 20),
)
def test_compaction_keeps_the_counts_and_raises_a_score_by_at_most_a_day_of_decay(
    ages: list[tuple[float, str]], keep_recent: int
) -> None:
    recs: list[Record] = [opened(NOW - age, n) for age, n in sorted(ages, reverse=True)]
    raw = {u.key: u for u in ranking.rank({"p": recs}, NOW, 14)}
    squeezed = journal.compact(recs, NOW, keep_days=15, keep_recent=keep_recent)
    compacted = {u.key: u for u in ranking.rank({"p": squeezed}, NOW, 14)}
    assert set(raw) == set(compacted)
    for key, u in raw.items():
        assert compacted[key].opens == u.opens
        assert u.score <= compacted[key].score * (1 + 1e-9)
        assert compacted[key].score <= u.score * 2 ** (DAY_SECONDS / HL) * (1 + 1e-9)


def test_first_seconds_is_the_median_delay_from_a_boot_to_its_first_open() -> None:
    boot1, boot2, boot3 = NOW - 3000, NOW - 2000, NOW - 1000
    journals: dict[str, list[Record]] = {
        "a": [Boot(boot1), opened(boot1 + 10, "ckpt"), opened(boot1 + 50, "ckpt"),
              opened(boot1 + 90, "lora"), Boot(boot2), opened(boot2 + 30, "ckpt")],
        "b": [opened(boot3 - 500, "lora"),  # no boot seen before it: no delay known
              Boot(boot3), opened(boot3 + 20, "ckpt")],
    }  # fmt: skip
    by_name = {u.name: u for u in ranking.rank(journals, NOW, 14)}
    assert by_name["ckpt"].first_seconds == 20  # median of 10, 30, 20
    assert by_name["lora"].first_seconds == 90


def usage(name: str, score: float = 1.0, first: float | None = None) -> Usage:
    return Usage("checkpoints", name, 1, score, NOW, frozenset({"p"}), 1, first)


candidates = st.lists(st.tuples(st.integers(0, 1000), st.booleans()), max_size=30).map(
    lambda xs: [Candidate(usage(f"m{i}", 100.0 - i), s, c) for i, (s, c) in enumerate(xs)]
)


@settings(max_examples=300, deadline=None)
@given(
    ranked=candidates,
    max_bytes=st.one_of(st.none(), st.integers(0, 5000)),
    space=st.integers(0, 5000),
)
def test_selection_fills_the_budget_greedily_in_rank_order(
    ranked: list[Candidate], max_bytes: int | None, space: int
) -> None:
    sel = ranking.select(ranked, max_bytes=max_bytes, space_bytes=space)
    assert sorted(sel.chosen + sel.left_out, key=lambda c: c.usage.name) == sorted(
        ranked, key=lambda c: c.usage.name
    )
    assert [c for c in ranked if c in sel.chosen] == sel.chosen  # rank order kept
    assert max_bytes is None or sel.chosen_bytes <= max_bytes
    assert sum(c.size for c in sel.chosen if not c.cached) <= space
    total = need = 0
    for c in ranked:  # each left-out candidate did not fit when its turn came
        if c in sel.chosen:
            total, need = total + c.size, need + (0 if c.cached else c.size)
        else:
            over_cap = max_bytes is not None and total + c.size > max_bytes
            assert over_cap or need + (0 if c.cached else c.size) > space


def test_a_cached_model_costs_no_free_space_but_counts_against_the_cap() -> None:
    big_cached = Candidate(usage("a", 3), 900, cached=True)
    small = Candidate(usage("b", 2), 200)
    sel = ranking.select([big_cached, small], max_bytes=None, space_bytes=300)
    assert sel.chosen == [big_cached, small]
    sel = ranking.select([big_cached, small], max_bytes=1000, space_bytes=300)
    assert (sel.chosen, sel.left_out) == ([big_cached], [small])


def test_copy_orders_within_the_chosen_set() -> None:
    a = Candidate(usage("a", 10, first=300), 1000)
    b = Candidate(usage("b", 5, first=None), 10)
    c = Candidate(usage("c", 1, first=5), 100)
    assert ranking.order([a, b, c], "score") == [a, b, c]
    assert ranking.order([a, b, c], "first_asked") == [c, a, b]
    assert ranking.order([a, b, c], "density") == [b, a, c]
    assert ranking.ORDER in ranking.ORDERS
    with pytest.raises(ValueError, match="unknown order 'size'"):
        ranking.order([a], "size")
