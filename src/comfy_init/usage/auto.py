"""``@auto`` in the warmup config: the fleet's journals turned into model files to warm.

A separate step beside the config's own expansion: each recorded ``<type>/<name>`` is read
as a config line naming it exactly (escaped, so it matches literally) and resolved as one
(``expand.resolve``: ComfyUI's search list for the type, behind the symlink fence).  What it
takes: the journals of every pod in ``WARMUP_AUTO_DAYS`` (silent pods' journals are pruned
first), ranked (``ranking.py``), less what the explicit lines list, less what is no longer
on the volume, is a bad name, or leads through a symlink out of the fence or round a loop
(that model alone is dropped, and counted), filled into the budget: ``WARMUP_AUTO_MAX_MB``
and the cache's free space less ``CACHE_RESERVE_MB`` and less what the lines before
``@auto`` will copy.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

from comfy_init import logs
from comfy_init.errors import ConfigError
from comfy_init.manifest import lines
from comfy_init.manifest.expand import Expansion, ModelFile, SearchPath, expand, resolve
from comfy_init.manifest.lines import Entry
from comfy_init.settings import Settings
from comfy_init.usage import journal, ranking
from comfy_init.usage.ranking import Candidate, Selection, Usage
from comfy_init.usage.records import DAY_SECONDS
from comfy_init.warmup import plan as copy_plan

log = logs.get_logger("usage.auto")

_GLOB = re.compile(r"([*?\[])")
# Why a recorded model is not a candidate (counted; the --suggest footer names them).
OUTSIDE = "a bad name or a link out of the model folders"
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


def learn(usage_dir: Path, window_days: int, now: float, *, prune: bool = False) -> Learned:
    """Read every pod's journal and rank what they recorded; with ``prune`` (the warmup
    does it, a look with --list does not) remove the journals of silent pods first."""
    pruned = journal.prune(usage_dir, window_days * DAY_SECONDS, now) if prune else []
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
    line: str = ""  # "file:line" of the @auto line

    def summary(self) -> dict[str, Any]:
        """The warmup report's ``auto`` object (``warmup/report.py``)."""
        return {
            "line": self.line,
            "models": len(self.candidates) + sum(self.dropped.values()),
            "candidates": len(self.candidates),
            "files": len(self.files),
            "bytes": sum(f.size for f in self.files),
            "left_out": len(self.selection.left_out),
            "dropped": counts(self),
            "skipped_lines": dict(self.skipped),
        }


def plan(
    learned: Learned,
    *,
    search: SearchPath,
    line: Entry,
    listed: set[tuple[str, str]],
    budget: Budget,
    is_cached: IsCached,
) -> AutoPlan:
    """Locate each ranked model on the volume, then fill the budget in rank order.

    ``line`` is the config's ``@auto`` line (each file's entry); ``listed`` the
    ``(type, name)`` the explicit lines expand to.
    """
    out = AutoPlan(skipped=dict(learned.skipped), line=line.origin)
    found: dict[tuple[str, str], ModelFile] = {}
    for usage in learned.ranked:
        if usage.key in listed:
            out.dropped[LISTED] += 1
            continue
        located = _locate(usage, search, line)
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


def _locate(usage: Usage, search: SearchPath, line: Entry) -> ModelFile | str:
    """The model file a recorded name stands for now, or why there is none."""
    parsed = lines.read(f"{usage.type}/{escape(usage.name)}", line.origin)
    if parsed.problems or len(parsed.entries) != 1:
        return OUTSIDE  # a name no config line could hold: "..", absolute, control characters
    try:
        found = resolve(parsed.entries[0], search)
    except ConfigError:  # a symlink that leads out of the fence, or loops
        return OUTSIDE
    if not found:
        return GONE
    return dataclasses.replace(found[0], entry=line)


@dataclass
class Expanded:
    """The config's files in priority order, and what ``@auto`` stood for (None: no line)."""

    expansion: Expansion
    auto: AutoPlan | None = None

    @property
    def files(self) -> list[ModelFile]:
        return self.expansion.files


def expand_config(
    entries: Sequence[Entry],
    settings: Settings,
    *,
    now: float,
    prune: bool = False,
    is_cached: IsCached | None = None,
    search: SearchPath | None = None,
) -> Expanded:
    """The explicit lines expanded as usual, the ``@auto`` line (if any) by the journals,
    its files placed where it stands; both looked up in ``search`` (default: the settings'
    ComfyUI search list)."""
    search = search or SearchPath.of(settings)
    explicit = expand(entries, search)
    line = next((e for e in entries if e.auto), None)
    if line is None:
        return Expanded(explicit)
    cached = is_cached or cached_in(settings.cache_path)
    earlier = set(entries[: list(entries).index(line)])

    def before(e: Entry) -> bool:
        return e in earlier

    budget = Budget(
        max_bytes=settings.warmup_auto_max_bytes or None,
        free_bytes=free_bytes(settings.cache_path),
        reserve_bytes=settings.cache_reserve_bytes,
        before_bytes=copy_bytes([f for f in explicit.files if before(f.entry)], cached),
    )
    learned = learn(settings.usage_path, settings.warmup_auto_days, now, prune=prune)
    chosen = plan(learned, search=search, line=line, listed=listed_keys(explicit.files),
                  budget=budget, is_cached=cached)  # fmt: skip
    files = merge(explicit.files, before, chosen.files)
    summary = chosen.summary()
    log.info("auto_expanded", line=line.origin, pruned=learned.pruned,
             **{k: v for k, v in summary.items() if k not in ("line", "dropped")},
             dropped=sum(chosen.dropped.values()))  # fmt: skip
    return Expanded(
        Expansion(files=files, unmatched=explicit.unmatched, skipped=explicit.skipped), chosen
    )


def model_types(entries: Sequence[Entry], settings: Settings, now: float) -> list[str]:
    """The type folders ``@auto`` may warm: those of every model the journals hold in the
    window, most used first (none without an ``@auto`` line).  ComfyUI's paths file names
    them, so a copy that lands while ComfyUI runs is found."""
    if not any(e.auto for e in entries):
        return []
    ranked = learn(settings.usage_path, settings.warmup_auto_days, now).ranked
    return list(dict.fromkeys(u.type for u in ranked))


def cached_in(cache_path: Path) -> IsCached:
    """Whether the cache holds an up-to-date copy of a file (a hit: copying it costs no
    space)."""

    def is_cached(f: ModelFile) -> bool:
        try:
            st = os.stat(copy_plan.dest_for(cache_path, f))
        except OSError:
            return False
        return S_ISREG(st.st_mode) and copy_plan.is_hit(
            f, copy_plan.CacheEntry(st.st_size, st.st_mtime_ns)
        )

    return is_cached


def free_bytes(path: Path) -> int:
    """Free space (for unprivileged users) on the filesystem that holds or will hold
    ``path``."""
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


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
