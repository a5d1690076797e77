"""Replay the workload day by day against three warm lists, one cache budget per run.

- ``static``: the models most opened in the first ``static_days`` days, filled into the
  budget in that order, never updated (a config written by hand once);
- ``auto``: what ``@auto`` chooses at each pod boot, from the journals written until then
  (those of the days before written and compacted by the real journal code, read back from
  disk each day), ranked and filled by the real ranking;
- ``belady``: the best set for that day's loads, known in advance (the offline limit);
- ``informed``: the workload's true popularity at that day, filled into the budget: what
  the best list learned from the past could reach (it cannot know the day's own draws).

The cache is filled at boot and not changed during the day (comfy-init copies at start), so
the offline limit for a day is the 0/1 knapsack over that day's loads (value: bytes loaded
from the model that day; weight: its size), solved exactly by dynamic programming over MiB.
The measure is the byte hit ratio: bytes loaded from the cache / bytes loaded.  With
``copy_rate`` the ``auto`` set is also replayed in background mode for each copy order: a
load is a hit only if its model's copy landed (copies one after the other from boot) before
the load.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.autolist.workload import Model, Params, Session, build
from comfy_init.usage import journal, ranking
from comfy_init.usage.records import DAY_SECONDS, Boot, Open, Record

EPOCH = 1_790_000_000.0  # the replay's day 0 (a real-looking Unix time, midnight UTC)
MIB = 1024 * 1024


@dataclass(frozen=True)
class Setup:
    budget: int  # bytes
    window_days: int = 14
    half_life_share: float = ranking.HALF_LIFE_SHARE
    static_days: int = 3
    # small, so the replay goes through compaction often (what the ranking then sees)
    compact_bytes: int = 32 * 1024
    keep_recent: int = 100
    copy_rate: float = 370e6  # B/s, the warmup's rate on the slow volume (README)
    per_boot: bool = True  # rank at each boot (as pods do), else once at the start of a day


@dataclass
class Day:
    day: int
    static: float
    auto: float
    belady: float
    informed: float
    auto_bytes: int  # size of the set @auto chose
    background: dict[str, float] = field(default_factory=dict)  # order -> byte hit ratio


def hit_ratio(loads: Iterable[Model], cached: set[tuple[str, str]]) -> float:
    total = hit = 0
    for m in loads:
        total += m.size
        hit += m.size if m.key in cached else 0
    return hit / total if total else 1.0


def best_set_bytes(loads: Sequence[Model], budget: int) -> int:
    """Bytes the best cache of ``budget`` serves for ``loads`` (0/1 knapsack, MiB grid)."""
    value: Counter[tuple[str, str]] = Counter()
    size: dict[tuple[str, str], int] = {}
    for m in loads:
        value[m.key] += m.size
        size[m.key] = m.size
    cap = budget // MIB
    best = np.zeros(cap + 1)
    for key, v in value.items():
        w = -(-size[key] // MIB)  # rounded up: the set found always fits
        if w <= cap:
            best[w:] = np.maximum(best[w:], best[: cap + 1 - w] + v)
    return int(best[cap])


def fill(ranked: Iterable[Model], budget: int) -> set[tuple[str, str]]:
    chosen: set[tuple[str, str]] = set()
    total = 0
    for m in ranked:
        if total + m.size <= budget:
            chosen.add(m.key)
            total += m.size
    return chosen


def background_ratio(
    day_sessions: Sequence[Session], copied: Sequence[Model], rate: float
) -> float:
    landed: dict[tuple[str, str], float] = {}
    t = 0.0
    for m in copied:
        t += m.size / rate
        landed[m.key] = t
    total = hit = 0
    for s in day_sessions:
        for load in s.loads:
            total += load.model.size
            if landed.get(load.model.key, float("inf")) <= load.seconds:
                hit += load.model.size
    return hit / total if total else 1.0


def _records(s: Session) -> list[Record]:
    start = EPOCH + s.day * DAY_SECONDS + s.boot
    out: list[Record] = [Boot(start)]
    out += [Open(start + x.seconds, x.model.type, x.model.name, x.model.size, 1, "volume")
            for x in s.loads]  # fmt: skip
    return out


def _choose(
    journals: dict[str, list[Record]],
    now: float,
    setup: Setup,
    by_key: dict[tuple[str, str], Model],
) -> list[ranking.Candidate]:
    ranked = ranking.rank(journals, now, setup.window_days, half_life_share=setup.half_life_share)
    candidates = [ranking.Candidate(u, by_key[u.key].size) for u in ranked]
    return ranking.select(candidates, max_bytes=setup.budget, space_bytes=setup.budget).chosen


def replay(params: Params, setup: Setup, orders: Sequence[str] = ranking.ORDERS) -> list[Day]:
    work = build(params)
    by_key = {m.key: m for m in work.models}
    by_day = [[s for s in work.sessions if s.day == d] for d in range(params.days)]
    first = Counter(x.model.key for d in by_day[: setup.static_days] for s in d for x in s.loads)
    static = fill((by_key[k] for k, _ in first.most_common()), setup.budget)
    writers: dict[str, journal.Writer] = {}
    days: list[Day] = []
    with tempfile.TemporaryDirectory(prefix="autolist-") as tmp:
        usage_dir = Path(tmp)
        for d, day_sessions in enumerate(by_day):
            now = EPOCH + d * DAY_SECONDS
            found = {pod: c.records for pod, c in journal.read_all(usage_dir).items()}
            loads = [x.model for s in day_sessions for x in s.loads]
            total = sum(m.size for m in loads)
            known = work.popular(d, params)
            informed = fill(sorted((by_key[k] for k in known), key=lambda m: -known[m.key]),
                            setup.budget)  # fmt: skip
            hit = 0
            bg: dict[str, float] = dict.fromkeys(orders, 0.0)
            chosen_bytes = 0
            daily = [] if setup.per_boot else _choose(found, now, setup, by_key)
            for s in day_sessions:
                boot = now + s.boot
                if setup.per_boot:  # what this boot's warmup sees: the journals so far today
                    seen = {pod: list(recs) for pod, recs in found.items()}
                    for other in day_sessions:
                        if other.boot < s.boot:
                            seen.setdefault(other.pod, []).extend(
                                r for r in _records(other) if r.time < boot
                            )
                    chosen = _choose(seen, boot, setup, by_key)
                else:
                    chosen = daily
                chosen_bytes = max(chosen_bytes, sum(c.size for c in chosen))
                cached = {c.usage.key for c in chosen}
                session_bytes = sum(x.model.size for x in s.loads)
                hit += round(hit_ratio((x.model for x in s.loads), cached) * session_bytes)
                for how in orders:
                    copied = [by_key[c.usage.key] for c in ranking.order(chosen, how)]
                    bg[how] += background_ratio([s], copied, setup.copy_rate) * session_bytes
            result = Day(
                day=d,
                static=hit_ratio(loads, static),
                auto=hit / total if total else 1.0,
                belady=best_set_bytes(loads, setup.budget) / total if total else 1.0,
                informed=hit_ratio(loads, informed),
                auto_bytes=chosen_bytes,
                background={how: v / total if total else 1.0 for how, v in bg.items()},
            )
            days.append(result)
            for s in day_sessions:  # the day's sidecars write their journals
                writer = writers.get(s.pod)
                if writer is None:
                    path = journal.path_for(usage_dir, s.pod)
                    writer = writers[s.pod] = journal.Writer(
                        path, setup.window_days, setup.compact_bytes, setup.keep_recent
                    )
                writer.write(_records(s))
                writer.compact_if_grown(now + DAY_SECONDS)
    return days
