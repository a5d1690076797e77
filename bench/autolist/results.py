"""The trace replay's results: summaries per run, Markdown tables, JSON and the plot."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.autolist.replay import Day, Setup
from bench.autolist.workload import GB, Params

GOAL = 0.9  # @auto's share of Belady's byte hit ratio, averaged over the days
COLOURS = {"static": "#c0504d", "auto": "#4f81bd", "belady": "#7f7f7f", "informed": "#9bbb59"}


@dataclass
class Run:
    workload: str
    params: Params
    setup: Setup
    days: list[Day]

    def _avg(self, attr: str, first: int = 1) -> float:
        """Mean over the days from ``first`` (day 0 starts with no journal)."""
        days = self.days[first:]
        return sum(getattr(d, attr) for d in days) / len(days)

    def summary(self) -> dict[str, Any]:
        shift = self.params.shift_day
        orders = self.days[0].background
        out = {k: self._avg(k) for k in ("static", "auto", "informed", "belady")}
        out["auto_of_belady"] = out["auto"] / out["belady"] if out["belady"] else 1.0
        out["after_shift_static"] = self._avg("static", shift)
        out["after_shift_auto"] = self._avg("auto", shift)
        n = len(self.days) - 1
        out["background"] = {k: sum(d.background[k] for d in self.days[1:]) / n for k in orders}
        out["goal_met"] = (
            out["auto_of_belady"] >= GOAL and out["after_shift_auto"] > out["after_shift_static"]
        )
        return out


@dataclass
class Results:
    runs: list[Run] = field(default_factory=list)
    sweep: list[Run] = field(default_factory=list)  # half-life shares, one budget

    def as_dict(self) -> dict[str, Any]:
        def run(r: Run) -> dict[str, Any]:
            return {
                "workload": r.workload,
                "params": asdict(r.params),
                "setup": asdict(r.setup),
                "summary": r.summary(),
                "days": [asdict(d) for d in r.days],
            }

        return {
            "goal": GOAL,
            "runs": [run(r) for r in self.runs],
            "sweep": [run(r) for r in self.sweep],
        }

    def markdown(self) -> str:
        lines = [
            "Byte hit ratio (bytes loaded from the cache / bytes loaded), mean over days 1-"
            f"{len(self.runs[0].days) - 1} (day 0 starts with no journal).",
            "",
            "| workload | cache | static list | `@auto` | Belady | `@auto` / Belady | "
            "after the shift: static | after the shift: `@auto` | goal |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in self.runs:
            s = r.summary()
            lines.append(
                f"| {r.workload} | {r.setup.budget / GB:.0f} GB | {s['static']:.3f} | "
                f"{s['auto']:.3f} | {s['belady']:.3f} | **{s['auto_of_belady']:.0%}** | "
                f"{s['after_shift_static']:.3f} | {s['after_shift_auto']:.3f} | "
                f"{'met' if s['goal_met'] else 'not met'} |"
            )
        lines += ["", "What a list learned from the past can reach at best (it knows the true",
                  "popularity, not the day's own draws), against the same Belady:", "",
                  "| workload | cache | informed | informed / Belady | `@auto` / informed |",
                  "|---|---:|---:|---:|---:|"]  # fmt: skip
        for r in self.runs:
            s = r.summary()
            lines.append(
                f"| {r.workload} | {r.setup.budget / GB:.0f} GB | {s['informed']:.3f} | "
                f"{s['informed'] / s['belady']:.0%} | {s['auto'] / s['informed']:.0%} |"
            )
        lines += ["", "Half-life of the ranking's weight (share of the 14-day window):", "",
                  "| cache | half-life | `@auto` | `@auto` / Belady | after the shift |",
                  "|---:|---:|---:|---:|---:|"]  # fmt: skip
        for r in self.sweep:
            s = r.summary()
            days = r.setup.half_life_share * r.setup.window_days
            lines.append(
                f"| {r.setup.budget / GB:.0f} GB | {r.setup.half_life_share:g} ({days:.1f} d) | "
                f"{s['auto']:.3f} | {s['auto_of_belady']:.0%} | {s['after_shift_auto']:.3f} |"
            )
        orders = list(self.runs[0].days[0].background)
        lines += ["", "Copy order within `@auto` in background mode (a load is a hit only once "
                  f"its copy landed; copies at {self.runs[0].setup.copy_rate / 1e6:.0f} MB/s "
                  "from boot):", "",
                  "| workload | cache | " + " | ".join(f"`{o}`" for o in orders) + " |",
                  "|---|---:|" + "---:|" * len(orders)]  # fmt: skip
        for r in self.runs:
            bg = r.summary()["background"]
            lines.append(
                f"| {r.workload} | {r.setup.budget / GB:.0f} GB | "
                + " | ".join(f"{bg[o]:.3f}" for o in orders)
                + " |"
            )
        return "\n".join(lines) + "\n"


def write_png(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    main = [r for r in results.runs if r.workload == results.runs[0].workload]
    fig, axes = plt.subplots(1, len(main), figsize=(4.2 * len(main), 3.6), squeeze=False)
    for ax, r in zip(axes[0], main, strict=True):
        xs = [d.day for d in r.days]
        for key, label in (("static", "static list"), ("auto", "@auto"), ("belady", "Belady")):
            ax.plot(xs, [getattr(d, key) for d in r.days], label=label, color=COLOURS[key],
                    marker="." if key == "auto" else None)  # fmt: skip
        ax.axvline(r.params.shift_day - 0.5, color="#999999", linestyle="--", linewidth=0.8)
        ax.text(r.params.shift_day - 0.3, 0.02, "popular set shifts", fontsize=7, color="#666666")
        ax.set_title(f"cache {r.setup.budget / GB:.0f} GB", fontsize=10)
        ax.set_xlabel("day")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("byte hit ratio")
    axes[0][0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"learned warm list, trace replay ({main[0].workload})", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
