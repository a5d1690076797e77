"""``@auto`` in the warmup config: the fleet's journals turned into model files to warm.

A separate step beside the config's own expansion: it yields ``<type>/<name>`` entries
(names escaped, so they match literally) that the usual expansion then resolves inside the
models tree.  What it takes: the journals of every pod in ``WARMUP_AUTO_DAYS`` (silent
pods' journals are pruned first), ranked (``ranking.py``), less what the explicit lines
list, less what is no longer on the volume or would leave the models tree (ignored like a
bad config line, and counted), filled into the budget: ``WARMUP_AUTO_MAX_MB`` and the cache's
free space less ``CACHE_RESERVE_MB`` and less what the lines before ``@auto`` will copy.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from comfy_init import manifest
from comfy_init.errors import ConfigError
from comfy_init.manifest import Entry, ModelFile
from comfy_init.usage import journal, ranking
from comfy_init.usage.ranking import Candidate, Selection, Usage
from comfy_init.usage.records import DAY_SECONDS

_GLOB = re.compile(r"([*?\[])")
# Why a recorded model is not a candidate (counted; the --suggest footer names them).
OUTSIDE = "a bad name or outside the models tree"
GONE = "not on the volume"
LISTED = "listed by the config"

IsCached = Callable[[ModelFile], bool]


def escape(name: str) -> str:
    """``name`` as a pattern that matches only itself (``[``, ``*``, ``?`` in brackets)."""
    return _GLOB.sub(r"[\1]", name)


@dataclass(frozen=True)
class Budget:
    max_bytes: int | None  # WARMUP_AUTO_MAX_MB; None: no cap
    free_bytes: int  # free space on the cache filesystem now
    reserve_bytes: int  # CACHE_RESERVE_MB
    before_bytes: int = 0  # what the config's lines before @auto will copy

    @property
    def space_bytes(self) -> int:
        return max(0, self.free_bytes - self.reserve_bytes - self.before_bytes)


@dataclass
class Learned:
    """The journals as ``@auto`` read them."""

    ranked: list[Usage]
    skipped: dict[str, int]  # journal lines skipped: torn, corrupt, future
    pruned: int  # silent pods' journals removed on the way


def learn(usage_dir: Path, window_days: int, now: float) -> Learned:
    """Prune silent pods' journals, read the others, rank what they recorded."""
    pruned = journal.prune(usage_dir, window_days * DAY_SECONDS, now)
    contents = journal.Contents()
    journals = {}
    for pod, found in journal.read_all(usage_dir).items():
        contents.add(found)
        journals[pod] = found.records
    return Learned(ranking.rank(journals, now, window_days), contents.skipped, len(pruned))


@dataclass
class AutoPlan:
    """What ``@auto`` stands for this time."""

    candidates: list[Candidate] = field(default_factory=list)  # ranked, on the volume
    selection: Selection = field(default_factory=Selection)
    files: list[ModelFile] = field(default_factory=list)  # chosen, in copy order
    dropped: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, int] = field(default_factory=dict)


def plan(
    learned: Learned,
    *,
    models_path: Path,
    origin: str,
    listed: set[tuple[str, str]],
    budget: Budget,
    is_cached: IsCached,
) -> AutoPlan:
    """Locate each ranked model on the volume, then fill the budget in rank order.

    ``origin`` is the ``file:line`` of the ``@auto`` line (the entries' origin); ``listed``
    the ``(type, name)`` the explicit lines expand to.
    """
    out = AutoPlan(skipped=dict(learned.skipped))
    found: dict[tuple[str, str], ModelFile] = {}
    for usage in learned.ranked:
        if usage.key in listed:
            out.dropped[LISTED] += 1
            continue
        located = _locate(usage, models_path, origin)
        if isinstance(located, str):
            out.dropped[located] += 1
            continue
        found[usage.key] = located
        out.candidates.append(Candidate(usage, located.size, is_cached(located)))
    out.selection = ranking.select(
        out.candidates, max_bytes=budget.max_bytes, space_bytes=budget.space_bytes
    )
    out.files = [found[c.usage.key] for c in ranking.order(out.selection.chosen)]
    return out


def _locate(usage: Usage, models_path: Path, origin: str) -> ModelFile | str:
    """The model file a recorded name stands for now, or why there is none."""
    try:
        entries = manifest.parse(f"{usage.type}/{escape(usage.name)}", origin)
        expansion = manifest.expand(entries, models_path)
    except ConfigError:  # a name that leaves the models tree, by itself or through a link
        return OUTSIDE
    if not entries or not expansion.files:
        return GONE
    f = expansion.files[0]
    # the entry names the @auto line, not line 1 of a one-line text
    return ModelFile(f.type, f.name, f.source, f.size, f.mtime_ns,
                     Entry(f.type, entries[0].pattern, origin))  # fmt: skip


def merge(
    explicit: Sequence[ModelFile], before: Callable[[Entry], bool], auto: Sequence[ModelFile]
) -> list[ModelFile]:
    """The warmup's files in priority order: the explicit lines before ``@auto``, the
    ``@auto`` files, the explicit lines after it."""
    return (
        [f for f in explicit if before(f.entry)]
        + list(auto)
        + [f for f in explicit if not before(f.entry)]
    )


def listed_keys(files: Sequence[ModelFile]) -> set[tuple[str, str]]:
    return {(f.type, f.name) for f in files}


def copy_bytes(files: Sequence[ModelFile], is_cached: IsCached) -> int:
    """Bytes that copying ``files`` will take on the cache (hits take none)."""
    return sum(f.size for f in files if not is_cached(f))


def counts(plan_: AutoPlan) -> Mapping[str, int]:
    """``dropped`` with every reason present (0 when none)."""
    return {reason: plan_.dropped.get(reason, 0) for reason in (LISTED, GONE, OUTSIDE)}
