"""Results of one end-to-end run: tables with ratios to a baseline of the same run, the
targets the init is held to, JSON.  Pure: data in, text out.

``LOAD_KEYS``, ``MODE_KEYS``, ``FOOTPRINT_KEYS`` and ``TARGETS`` name the rows a complete
run has (the smoke test checks the output against them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.e2e.footprint import Window
from bench.e2e.load import Load
from bench.e2e.modes import BACKGROUND, MODES, SKIP, ModeRun
from bench.table import LOCAL, VOLUME, num, row, verdict

COLD, WARM = "cold", "warm"
MB = 1_000_000
LOAD_KEYS = tuple(
    (t, s, c) for t in (LOCAL, VOLUME) for s in ("volume", "cache") for c in (COLD, WARM)
)
MODE_KEYS = tuple((t, m) for t in (LOCAL, VOLUME) for m in MODES)
FOOTPRINT_KEYS = tuple(
    (w, r) for w in ("idle", "scraped 1/s") for r in ("pid1", "supervisord", "sidecar")
)
TARGETS = (
    "cached load >= 10x faster than a volume load (slow volume, cold page cache both)",
    "background: ready within 1 s of SKIP_WARMUP=1 (slow volume)",
    "background: every model served from the cache once its copy landed",
    "PID 1 + sidecar: RSS < 80 MB (idle)",
    "PID 1 + sidecar: CPU < 1% of one core (idle)",
)


@dataclass(frozen=True)
class LoadRow:
    target: str
    source: str  # "volume" ($COMFYUI_PATH/models) or "cache"
    page_cache: str  # "cold" or "warm"
    load: Load  # the fastest round
    rounds: tuple[float, ...] = ()  # seconds of every round


@dataclass
class Results:
    machine: dict[str, Any]
    volume_shape: str
    cold_method: str
    models: list[dict[str, Any]]  # rel, size, tensors
    smoke: bool = False
    loads: list[LoadRow] = field(default_factory=list)
    runs: list[ModeRun] = field(default_factory=list)
    load_model: str = ""

    def load(self, target: str, source: str, page_cache: str) -> Load | None:
        return next(
            (
                r.load
                for r in self.loads
                if (r.target, r.source, r.page_cache) == (target, source, page_cache)
            ),
            None,
        )

    def run(self, target: str, mode: str) -> ModeRun | None:
        return next((r for r in self.runs if (r.target, r.mode) == (target, mode)), None)

    def footprint(self) -> list[Window]:
        return [w for r in self.runs for w in r.footprint]

    # --- targets ---------------------------------------------------------------------

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(target, measured, met) for each target; None: not measured."""
        out: list[tuple[str, str, bool | None]] = []
        vol, cached = self.load(VOLUME, "volume", COLD), self.load(VOLUME, "cache", COLD)
        if vol and cached:
            ratio = vol.seconds / cached.seconds
            out.append(
                (
                    TARGETS[0],
                    f"{ratio:.1f}x ({vol.seconds:.2f} s vs {cached.seconds:.2f} s)",
                    ratio >= 10,
                )
            )
        skip, bg = self.run(VOLUME, SKIP), self.run(VOLUME, BACKGROUND)
        if skip and bg:
            gap = bg.ready - skip.ready
            out.append(
                (TARGETS[1], f"{bg.ready:.2f} s vs {skip.ready:.2f} s ({gap:+.2f} s)", gap <= 1.0)
            )
        landed = [t for r in self.runs if r.mode == BACKGROUND for t in r.after_landing]
        if landed:
            cached_n = sum(t.load.served_from == "cache" for t in landed)
            out.append(
                (
                    TARGETS[2],
                    f"{cached_n} of {len(landed)} loads from the cache",
                    cached_n == len(landed),
                )
            )
        idle = next((w for w in self.footprint() if w.name == "idle"), None)
        if idle is not None:
            rss, cpu = idle.of("pid1", "sidecar")
            out.append((TARGETS[3], f"{rss / MB:.1f} MB", rss < 80 * MB))
            out.append((TARGETS[4], f"{cpu:.2f}%", cpu < 1.0))
        return out

    # --- Markdown --------------------------------------------------------------------

    def markdown(self) -> str:
        models = ", ".join(
            f"`{m['rel']}` {m['size'] / MB:.0f} MB ({m['tensors']} tensors)" for m in self.models
        )
        lines = [
            f"Slow volume: {self.volume_shape}. Page cache made cold with {self.cold_method}.",
            f"Models: {models}.",
            *self._loads_table(),
            *self._start_table(),
            *self._switch_table(),
            *self._footprint_table(),
            "",
            row("target", "measured", "met"),
            row("---", "---", "---"),
        ]
        for goal, measured, met in self.targets():
            lines.append(row(goal, measured, verdict(met, self.smoke)))
        return "\n".join(lines) + "\n"

    def _loads_table(self) -> list[str]:
        lines = [
            "",
            f"**Model load** of `{self.load_model}` (in-process, `safetensors.safe_open` + "
            "`get_tensor` for every key; fastest of the rounds; volume: `$COMFYUI_PATH/models`, "
            "on the local-disk target a plain directory):",
            "",
            row("target", "read from", "page cache", "seconds", "MB/s", "vs volume, cold", "note"),
            row("---", "---", "---", "---:", "---:", "---:", "---"),
        ]
        for r in self.loads:
            base = self.load(r.target, "volume", COLD)
            ratio = base.seconds / r.load.seconds if base else None
            served = r.load.volume_bytes
            note = "" if served is None else f"{served / MB:.0f} MB through FUSE; "
            note += "rounds: " + ", ".join(f"{x:.2f}" for x in r.rounds) if r.rounds else ""
            lines.append(
                row(
                    r.target,
                    r.source,
                    r.page_cache,
                    f"{r.load.seconds:.2f}",
                    f"{r.load.nbytes / r.load.seconds / MB:.0f}",
                    num(ratio, ".1f", "x"),
                    note,
                )
            )
        return lines

    def _start_table(self) -> list[str]:
        names = [m["rel"].split("/")[-1].removesuffix(".safetensors") for m in self.models]
        lines = [
            "",
            "**Time to ready and first loads**: seconds from the spawn of `comfy-init start` "
            "(PID 1) until ComfyUI answers, then until each model's load (asked for as soon as "
            "ComfyUI answers) is done; in brackets the load itself and where the file came from.",
            "",
            row("target", "mode", "ready", "vs skip", "warmup", *names),
            row("---", "---", "---:", "---:", "---:", *["---:"] * len(names)),
        ]
        for r in self.runs:
            skip = self.run(r.target, SKIP)
            cells = [
                f"{t.done_at:.2f} ({t.load.seconds:.2f}, {t.load.served_from})" for t in r.first
            ]
            vs = f"{r.ready - skip.ready:+.2f}" if skip else "-"
            warmup = num(r.warmup_seconds, ".2f")
            lines.append(row(r.target, r.mode, f"{r.ready:.2f}", vs, warmup, *cells))
            if r.after_landing:
                cells = [
                    f"copy at {num(r.landed.get(t.model), '.2f')}; then "
                    f"({t.load.seconds:.2f}, {t.load.served_from})"
                    for t in r.after_landing
                ]
                lines.append(row(r.target, f"{r.mode}, once copied", "", "", "", *cells))
        return lines

    def _switch_table(self) -> list[str]:
        lines = [
            "",
            "**Switching**: the two largest models loaded alternately, each loaded once before.",
            "",
            row("target", "mode", "loads", "mean s", "max s", "from"),
            row("---", "---", "---:", "---:", "---:", "---"),
        ]
        for r in self.runs:
            if r.switches:
                secs = [s.seconds for s in r.switches]
                where = "/".join(sorted({s.served_from for s in r.switches}))
                mean = f"{sum(secs) / len(secs):.3f}"
                lines.append(row(r.target, r.mode, str(len(secs)), mean, f"{max(secs):.3f}", where))
        return lines

    def _footprint_table(self) -> list[str]:
        lines = [
            "",
            "**Footprint of the init** while ComfyUI runs (slow volume, background warmup done):",
            "",
            row("window", "process", "RSS MB", "PSS MB", "CPU % of one core", "scrapes"),
            row("---", "---", "---:", "---:", "---:", "---"),
        ]
        for w in self.footprint():
            window = f"{w.name} ({w.seconds:.0f} s)"
            scrapes = ""
            if w.scrapes and w.scrape_p50_ms is not None and w.scrape_max_ms is not None:
                scrapes = f"{w.scrapes}, p50 {w.scrape_p50_ms:.1f} ms, max {w.scrape_max_ms:.1f} ms"
            for u in w.usage:
                pss = num(u.pss / MB if u.pss else None, ".1f")
                cpu = f"{u.cpu_percent:.2f}"
                lines.append(row(window, u.role, f"{u.rss / MB:.1f}", pss, cpu, scrapes))
            rss, cpu_sum = w.of("pid1", "sidecar")
            pss_sum = sum(u.pss or 0 for u in w.usage if u.role in ("pid1", "sidecar"))
            lines.append(
                row(
                    window,
                    "PID 1 + sidecar",
                    f"{rss / MB:.1f}",
                    f"{pss_sum / MB:.1f}",
                    f"{cpu_sum:.2f}",
                    "",
                )
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "volume_shape": self.volume_shape,
            "cold_method": self.cold_method,
            "smoke": self.smoke,
            "models": self.models,
            "load_model": self.load_model,
            "loads": [asdict(r) for r in self.loads],
            "runs": [asdict(r) for r in self.runs],
            "targets": [{"target": g, "measured": m, "met": ok} for g, m, ok in self.targets()],
        }
