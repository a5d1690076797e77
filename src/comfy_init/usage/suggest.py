"""``comfy-init warmup --suggest [--json]``: a ready-to-use warmup config from the journals.

Pure: the ranked candidates and the budget in, a dict (the JSON form) and its text out.  One
``<type>/<name>`` per line, most used first, each with a comment (opens, last used, pods,
size); a model that does not fit in the budget is written commented out, so the file can be
used as it is and the user sees what was left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from comfy_init.usage.ranking import Candidate, Selection


def suggestion(
    candidates: Sequence[Candidate],
    selection: Selection,
    *,
    usage_dir: str,
    window_days: int,
    free_bytes: int,
    reserve_bytes: int,
    max_bytes: int | None,
    skipped: Mapping[str, int],
    dropped: Mapping[str, int],
) -> dict[str, Any]:
    """The JSON form: every candidate in rank order, whether it fits, and the totals."""
    fits = {c.usage.key for c in selection.chosen}
    models = [
        {
            "entry": c.usage.text,
            "type": c.usage.type,
            "name": c.usage.name,
            "opens": c.usage.opens,
            "score": round(c.usage.score, 4),
            "last_used": c.usage.last,
            "pods": len(c.usage.pods),
            "size": c.size,
            "cached": c.cached,
            "fits": c.usage.key in fits,
        }
        for c in candidates
    ]
    return {
        "usage_dir": usage_dir,
        "window_days": window_days,
        "pods": len({p for c in candidates for p in c.usage.pods}),
        "free_bytes": free_bytes,
        "reserve_bytes": reserve_bytes,
        "max_bytes": max_bytes,
        "total_bytes": sum(c.size for c in candidates),
        "fits_bytes": selection.chosen_bytes,
        "models": models,
        "skipped_lines": dict(skipped),
        "dropped_models": dict(dropped),
    }


def render(data: Mapping[str, Any], human: Callable[[int | None], str]) -> str:
    """The config text of ``suggestion(...)``; ``human`` formats a byte count."""
    lines = [
        f"# warmup config suggested from the usage journals in {data['usage_dir']}",
        f"# {len(data['models'])} models opened by {data['pods']} pods in the last "
        f"{data['window_days']} days, most used first",
    ]
    width = max((len(m["entry"]) for m in data["models"]), default=0)
    for m in data["models"]:
        day = time.strftime("%Y-%m-%d", time.gmtime(m["last_used"]))
        note = f"# {m['opens']} opens, last used {day}, {m['pods']} pods, {human(m['size'])}" + (
            "" if m["fits"] else ", does not fit"
        )
        entry = m["entry"] if m["fits"] else f"# {m['entry']}"
        lines.append(f"{entry:<{width + 2}}  {note}")
    cap = "" if data["max_bytes"] is None else f", WARMUP_AUTO_MAX_MB {human(data['max_bytes'])}"
    lines.append(
        f"# total {human(data['fits_bytes'])} of {human(data['total_bytes'])} used; cache free "
        f"{human(data['free_bytes'])} less {human(data['reserve_bytes'])} reserve{cap}"
    )
    skipped = {k: v for k, v in data["skipped_lines"].items() if v}
    dropped = {k: v for k, v in data["dropped_models"].items() if v}
    if skipped or dropped:
        parts = [f"{v} {k} journal lines" for k, v in sorted(skipped.items())]
        parts += [f"{v} models {k}" for k, v in sorted(dropped.items())]
        lines.append("# left out: " + ", ".join(parts))
    return "\n".join(lines)
