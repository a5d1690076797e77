"""What the warmup report lists before the first copy: a record per file (to copy, or
already cached), per line that matched nothing and per line (or file of a line) skipped.
Pure: built from the config's lines, their expansion and the plan."""

from __future__ import annotations

from collections.abc import Sequence

from comfy_init.manifest import lines
from comfy_init.manifest.expand import Expansion
from comfy_init.settings import Settings
from comfy_init.warmup import plan
from comfy_init.warmup.report import FileRecord, SkippedLine


def files(
    settings: Settings,
    entries: Sequence[lines.Entry],
    expansion: Expansion,
    steps: Sequence[plan.Step],
) -> list[FileRecord]:
    """One record per planned file and one per unmatched line, in config order."""
    by_entry: dict[lines.Entry, list[FileRecord]] = {}
    for s in steps:
        by_entry.setdefault(s.file.entry, []).append(
            FileRecord(
                type=s.file.type,
                name=s.file.name,
                source=str(s.file.source),
                dest=str(s.dest),
                size=s.file.size,
                status="hit" if s.action == "hit" else "pending",
                line=s.file.entry.origin,
                auto=s.file.entry.auto,
            )
        )
    unmatched = set(expansion.unmatched)
    records: list[FileRecord] = []
    for entry in entries:
        records.extend(by_entry.pop(entry, []))
        if entry in unmatched:
            records.append(
                FileRecord(
                    type=entry.type,
                    name=entry.pattern,
                    source=str(settings.models_path / entry.type / entry.pattern),
                    dest=str(settings.cache_path / entry.type / entry.pattern),
                    size=0,
                    status="missing",
                    line=entry.origin,
                )
            )
    return records


def skipped(skips: Sequence[lines.Skip]) -> list[SkippedLine]:
    """The records of ``skips`` in config order (bad lines are found when reading, refused
    links when expanding); a line's own records keep their order."""

    def number(skip: lines.Skip) -> int:
        tail = skip.origin.rpartition(":")[2]
        return int(tail) if tail.isdigit() else 0

    return [SkippedLine(s.origin, s.text, s.reason, s.message) for s in sorted(skips, key=number)]
