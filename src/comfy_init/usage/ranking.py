"""Which recorded models ``@auto`` warms, and in what order: pure functions of the journals.

Ranking is a recency-weighted frequency (as LRFU cache eviction): every open of a model by
any pod within the window counts ``2 ** (-age / half_life)``, so an open today weighs 1 and
one ``half_life`` ago 1/2.  The half-life is a tenth of the window (1.4 days for 14): in the
trace replay (bench/autolist) it followed a change of the fleet's models fastest without
losing the steady state.  A day total from compaction counts its opens at the age of its
last one.  For the byte hit ratio (bytes loaded from the cache / bytes loaded), a model's
worth per byte of cache is its expected number of loads, so ranking by score and filling
the budget in that order is the greedy knapsack; a model that does not fit is passed over
and smaller ones further down may still fit, as in the warmup itself.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from comfy_init.usage.records import DAY_SECONDS, Boot, Open, Record

HALF_LIFE_SHARE = 0.1  # half-life as a share of the window (measured: bench/autolist)
# Within @auto's chosen set: most used first (measured against the alternatives by
# bench/autolist; see its README section).
ORDERS: tuple[str, ...] = ("score", "first_asked", "density")
ORDER = "score"


@dataclass(frozen=True)
class Usage:
    """One model's recorded use by the fleet within the window."""

    type: str
    name: str
    opens: int
    score: float
    last: float  # time of the last open
    pods: frozenset[str]
    size: int  # size at the last recorded open
    first_seconds: float | None = None  # median delay from a boot to its first open of it

    @property
    def key(self) -> tuple[str, str]:
        return self.type, self.name

    @property
    def text(self) -> str:
        return f"{self.type}/{self.name}"


@dataclass(frozen=True)
class Candidate:
    """A ranked model as it is now: its size on the volume and whether the cache holds it."""

    usage: Usage
    size: int
    cached: bool = False


@dataclass(frozen=True)
class Selection:
    chosen: list[Candidate] = field(default_factory=list)
    left_out: list[Candidate] = field(default_factory=list)  # over the budget

    @property
    def chosen_bytes(self) -> int:
        return sum(c.size for c in self.chosen)


def half_life(window_days: float, share: float = HALF_LIFE_SHARE) -> float:
    return window_days * DAY_SECONDS * share


def weight(age_seconds: float, half_life_seconds: float) -> float:
    return float(2.0 ** (-max(0.0, age_seconds) / half_life_seconds))


@dataclass
class _Tally:
    opens: int = 0
    score: float = 0.0
    last: float = 0.0
    size: int = 0
    pods: set[str] = field(default_factory=set)
    firsts: list[float] = field(default_factory=list)


def rank(
    journals: Mapping[str, Sequence[Record]],
    now: float,
    window_days: float,
    *,
    half_life_share: float = HALF_LIFE_SHARE,
) -> list[Usage]:
    """Every model opened within ``window_days`` before ``now``, best first (score, then
    the more recent, then by name)."""
    since = now - window_days * DAY_SECONDS
    hl = half_life(window_days, half_life_share)
    tallies: dict[tuple[str, str], _Tally] = {}
    for pod, recs in journals.items():
        boot: float | None = None
        seen_in_boot: set[tuple[str, str]] = set()
        for r in recs:
            if isinstance(r, Boot):
                boot, seen_in_boot = r.time, set()
                continue
            opens, last = (1, r.time) if isinstance(r, Open) else (r.opens, r.last)
            if last < since or last > now:
                continue
            t = tallies.setdefault(r.key, _Tally())
            t.opens += opens
            t.score += opens * weight(now - last, hl)
            if last >= t.last:
                t.last, t.size = last, r.size
            t.pods.add(pod)
            if isinstance(r, Open) and boot is not None and r.key not in seen_in_boot:
                seen_in_boot.add(r.key)
                t.firsts.append(max(0.0, r.time - boot))
    ranked = [
        Usage(
            k[0],
            k[1],
            t.opens,
            t.score,
            t.last,
            frozenset(t.pods),
            t.size,
            statistics.median(t.firsts) if t.firsts else None,
        )
        for k, t in tallies.items()
    ]
    ranked.sort(key=lambda u: (-u.score, -u.last, u.key))
    return ranked


def select(ranked: Iterable[Candidate], *, max_bytes: int | None, space_bytes: int) -> Selection:
    """Take candidates in rank order while they fit: their total size within ``max_bytes``
    (None: no cap), and the ones not cached yet within ``space_bytes`` of free cache space."""
    out = Selection()
    total = need = 0
    for c in ranked:
        cost = 0 if c.cached else c.size
        if (max_bytes is None or total + c.size <= max_bytes) and need + cost <= space_bytes:
            out.chosen.append(c)
            total += c.size
            need += cost
        else:
            out.left_out.append(c)
    return out


def order(chosen: Sequence[Candidate], how: str = ORDER) -> list[Candidate]:
    """The copy order within ``@auto``'s chosen set.

    ``score``: most used first.  ``first_asked``: what boots asked for soonest first (never
    seen right after a boot: last, by score).  ``density``: most opens per byte first (small
    popular files land early).
    """
    if how == "score":
        return list(chosen)
    if how == "first_asked":
        never = float("inf")
        rank_of = {c.usage.key: i for i, c in enumerate(chosen)}
        return sorted(
            chosen,
            key=lambda c: (
                never if c.usage.first_seconds is None else c.usage.first_seconds,
                rank_of[c.usage.key],
            ),
        )
    if how == "density":
        return sorted(chosen, key=lambda c: -c.usage.score / max(c.size, 1))
    raise ValueError(f"unknown order {how!r} (one of {', '.join(ORDERS)})")
