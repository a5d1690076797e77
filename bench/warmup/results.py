"""Results of one warmup benchmark run: rows, ratios to ``cp`` from the same run, goals,
Markdown.

Pure: data in, text out.  ``ROW_KEYS`` lists the rows a complete run has (the smoke test
checks the printed table against it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.slowfs import MB
from bench.table import LOCAL, VOLUME, num, verdict

CP, RSYNC, PARALLEL, PARALLEL_COPY, WARMUP, RERUN = (
    "cp -r",
    "rsync -a",
    "best parallel read",
    "best parallel copy",
    "comfy-init warmup",
    "comfy-init warmup, all hits",
)
ROW_KEYS: tuple[tuple[str, str], ...] = (
    (LOCAL, CP),
    (LOCAL, RSYNC),
    (LOCAL, WARMUP),
    (LOCAL, RERUN),
    (VOLUME, CP),
    (VOLUME, RSYNC),
    (VOLUME, PARALLEL),
    (VOLUME, PARALLEL_COPY),
    (VOLUME, WARMUP),
    (VOLUME, RERUN),
)


@dataclass
class Row:
    target: str
    method: str
    files: int
    bytes: int  # bytes read from the source (0 for an all-hits run)
    seconds: float
    flushed_seconds: float | None = None  # plus the sync of what the command left dirty
    note: str = ""
    attempts: list[float] = field(default_factory=list)  # seconds of every round

    @property
    def mb_per_s(self) -> float | None:
        return self.bytes / self.seconds / MB if self.bytes and self.seconds > 0 else None


@dataclass
class Results:
    machine: dict[str, Any]
    volume_shape: str
    smoke: bool = False  # tiny files: the run proves the bench works, the goals are not judged
    rows: list[Row] = field(default_factory=list)
    sweep: dict[int, float] = field(default_factory=dict)  # readers -> MB/s on the volume
    ceiling: dict[int, float] = field(default_factory=dict)  # the same, stand-in unthrottled
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, target: str, method: str) -> Row | None:
        return next((r for r in self.rows if (r.target, r.method) == (target, method)), None)

    def ratio_to_cp(self, r: Row) -> float | None:
        cp = self.row(r.target, CP)
        if cp is None or r.mb_per_s is None or cp.mb_per_s is None:
            return None
        return r.mb_per_s / cp.mb_per_s

    def goals(self) -> list[tuple[str, str, bool | None]]:
        """(goal, measured, met) for each goal the warmup is held to."""
        out: list[tuple[str, str, bool | None]] = []
        vol, best = self.row(VOLUME, WARMUP), self.row(VOLUME, PARALLEL)
        if vol is not None and (ratio := self.ratio_to_cp(vol)) is not None:
            out.append(
                ("slow volume: several times faster than cp (>= 3x)", f"{ratio:.2f}x", ratio >= 3)
            )
        if vol and best and vol.mb_per_s and best.mb_per_s:
            share = vol.mb_per_s / best.mb_per_s
            out.append(
                ("slow volume: within 10% of the best parallel read", f"{share:.0%}", share >= 0.9)
            )
        pcopy = self.row(VOLUME, PARALLEL_COPY)
        if vol and pcopy and vol.mb_per_s and pcopy.mb_per_s:
            share = vol.mb_per_s / pcopy.mb_per_s
            out.append(
                (
                    "slow volume: as fast as K parallel dd copies to local disk (context)",
                    f"{share:.0%}",
                    share >= 0.9,
                )
            )
        loc = self.row(LOCAL, WARMUP)
        if loc is not None and (ratio := self.ratio_to_cp(loc)) is not None:
            out.append(("local disk: at least as fast as cp", f"{ratio:.2f}x", ratio >= 1.0))
        for target in (LOCAL, VOLUME):
            hits = self.row(target, RERUN)
            if hits is not None:
                out.append(
                    (
                        f"{target}: all-hits re-run of {hits.files} files well under 1 s (< 0.5 s)",
                        f"{hits.seconds:.2f} s",
                        hits.seconds < 0.5,
                    )
                )
        return out

    def markdown(self) -> str:
        lines = [
            f"Slow volume: {self.volume_shape}.",
            "",
            "| target | method | files | MB | seconds | MB/s | vs cp | + sync, s | note |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.rows:
            ratio = self.ratio_to_cp(r)
            note = r.note
            if len(r.attempts) > 1 and r.method not in (PARALLEL, PARALLEL_COPY):
                note += f"; best of {', '.join(f'{s:.2f}' for s in r.attempts)} s"
            lines.append(
                f"| {r.target} | {r.method} | {r.files} | {r.bytes / MB:.0f} | {r.seconds:.2f} | "
                f"{num(r.mb_per_s, '.0f')} | {num(ratio, '.2f', 'x')} | "
                f"{num(r.flushed_seconds, '.2f')} | {note} |"
            )
        if self.sweep:
            rates = ", ".join(f"{k}: {v:.0f}" for k, v in sorted(self.sweep.items()))
            lines += ["", f"Parallel readers on the slow volume (readers: MB/s): {rates}."]
        if self.ceiling:
            rates = ", ".join(f"{k}: {v:.0f}" for k, v in sorted(self.ceiling.items()))
            lines += [
                "",
                "The stand-in with no latency and no caps, its own ceiling on this machine "
                f"(readers: MB/s): {rates}.",
            ]
        lines += ["", "| goal | measured | met |", "|---|---|---|"]
        for goal, measured, met in self.goals():
            lines.append(f"| {goal} | {measured} | {verdict(met, self.smoke)} |")
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "volume_shape": self.volume_shape,
            "smoke": self.smoke,
            "rows": [
                {**asdict(r), "mb_per_s": r.mb_per_s, "ratio_to_cp": self.ratio_to_cp(r)}
                for r in self.rows
            ],
            "parallel_read_mb_per_s": {str(k): v for k, v in sorted(self.sweep.items())},
            "unthrottled_parallel_read_mb_per_s": {
                str(k): v for k, v in sorted(self.ceiling.items())
            },
            "goals": [{"goal": g, "measured": m, "met": ok} for g, m, ok in self.goals()],
            **self.extra,
        }


def best_rows(attempts: list[Row]) -> tuple[list[Row], dict[int, float]]:
    """The fastest attempt of each row (first-seen order), every attempt's seconds kept;
    and the best MB/s of each reader count of the parallel-read sweep."""
    best: dict[tuple[str, str], Row] = {}
    seen: dict[tuple[str, str], list[float]] = {}
    sweep: dict[int, float] = {}
    for row in attempts:
        if row.method == PARALLEL:
            sweep[row.files] = max(sweep.get(row.files, 0.0), row.mb_per_s or 0.0)
        key = (row.target, row.method)
        seen.setdefault(key, []).append(row.seconds)
        if key not in best or _faster(row, best[key]):
            best[key] = row
    rows = []
    for key, row in best.items():
        row.attempts = seen[key]
        rows.append(row)
    return rows, sweep


def _faster(a: Row, b: Row) -> bool:
    """Rows of one kind compare by rate when they move bytes (sweep rows differ in size)."""
    if a.mb_per_s is not None and b.mb_per_s is not None:
        return a.mb_per_s > b.mb_per_s
    return a.seconds < b.seconds
