"""The end-to-end benchmark's plot: time to ready and model load times per warmup mode.

One row per target (slow volume, local disk); left: seconds from the spawn of
``comfy-init start`` until ComfyUI answers, per mode; right: how long each model's load
took when asked for right after ready, per mode, and in background mode once its copy had
landed.  Written with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

from pathlib import Path

from bench.e2e.modes import BACKGROUND, MODES
from bench.e2e.results import Results
from bench.table import LOCAL, VOLUME

COLOURS = {"SKIP_WARMUP=1": "#c0504d", "blocking": "#4f81bd", "background": "#9bbb59"}
LANDED_COLOUR = "#2e7d32"


def write_png(results: Results, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [t for t in (VOLUME, LOCAL) if any(r.target == t for r in results.runs)]
    fig, axes = plt.subplots(
        len(targets), 2, figsize=(11, 3.6 * len(targets)), squeeze=False, width_ratios=[1, 2.4]
    )
    names = [m["rel"].split("/")[-1].removesuffix(".safetensors") for m in results.models]
    for row, target in enumerate(targets):
        runs = [r for mode in MODES if (r := results.run(target, mode)) is not None]
        ready_ax, load_ax = axes[row]
        bars = ready_ax.bar(
            [r.mode for r in runs],
            [r.ready for r in runs],
            color=[COLOURS[r.mode] for r in runs],
        )
        ready_ax.bar_label(bars, fmt=_seconds, fontsize=8)
        ready_ax.set_title(f"{target}: time to ready", fontsize=10)
        ready_ax.set_ylabel("seconds from comfy-init start")
        ready_ax.tick_params(axis="x", labelsize=8)

        series = [(r.mode, [t.load.seconds for t in r.first], COLOURS[r.mode]) for r in runs]
        bg = results.run(target, BACKGROUND)
        if bg is not None and bg.after_landing:
            landed = [t.load.seconds for t in bg.after_landing]
            series.append(("background, once copied", landed, LANDED_COLOUR))
        width = 0.8 / max(len(series), 1)
        for i, (label, secs, colour) in enumerate(series):
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(secs))]
            bars = load_ax.bar(xs, secs, width, label=label, color=colour)
            load_ax.bar_label(bars, fmt=_seconds, fontsize=7)
        load_ax.set_xticks(range(len(names)), names, fontsize=8)
        load_ax.set_title(f"{target}: model load through ComfyUI (first after start)", fontsize=10)
        load_ax.set_ylabel("seconds")
        load_ax.legend(fontsize=8)
    fig.suptitle(f"comfy-init end to end; slow volume: {results.volume_shape}", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _seconds(value: float) -> str:
    return f"{value:.2f}" if value < 1 else f"{value:.1f}"
