"""``python -m bench.autolist``: how good is the learned warm list?

    .venv/bin/python -m bench.autolist --docs    # ~30 s; writes docs/bench/autolist.{md,json,png}
    .venv/bin/python -m bench.autolist --smoke   # a few seconds (part of the tests)

A pure simulation (no FUSE, no root): the workload of ``workload.py`` replayed by
``replay.py`` for a few cache sizes, a sparser workload beside it, a sweep of the ranking's
half-life, and the copy orders in background mode.  Results go to ``--out-dir`` (default
``bench/results/``, not tracked) or to ``docs/bench/autolist.*`` with ``--docs``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench import REPO, outputs
from bench.autolist.replay import Setup, replay
from bench.autolist.results import Results, Run, write_png
from bench.autolist.workload import GB, Params

FLEET = "fleet"  # the default workload
SPARSE = "sparse"


def workloads(smoke: bool) -> dict[str, Params]:
    if smoke:
        return {FLEET: Params(days=6, shift_day=3, sessions_per_day=4, flows_per_session=3)}
    return {FLEET: Params(), SPARSE: Params(sessions_per_day=10, flows_per_session=2)}


def run(args: argparse.Namespace) -> Results:
    results = Results()
    budgets = [b * GB for b in args.budgets_gb]
    for name, params in workloads(args.smoke).items():
        for budget in budgets:
            setup = Setup(budget=budget, window_days=args.window_days)
            results.runs.append(Run(name, params, setup, replay(params, setup)))
            print(f"bench: {name} {budget / GB:.0f} GB done", file=sys.stderr)
    params = workloads(args.smoke)[FLEET]
    for share in args.half_life_shares:
        setup = Setup(budget=budgets[len(budgets) // 2], window_days=args.window_days,
                      half_life_share=share)  # fmt: skip
        results.sweep.append(Run(FLEET, params, setup, replay(params, setup, orders=())))
    return results


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.autolist",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--smoke", action="store_true", help="a short workload, one cache size (CI)")
    p.add_argument("--budgets-gb", type=float, nargs="+", default=None, help="25 50 100")
    p.add_argument("--window-days", type=int, default=14, help="WARMUP_AUTO_DAYS (14)")
    p.add_argument(
        "--half-life-shares", type=float, nargs="+", default=[0.05, 0.1, 0.25, 1.0],
        help="half-lives swept, as shares of the window",
    )  # fmt: skip
    p.add_argument("--out-dir", type=Path, default=outputs.RESULTS_DIR)
    p.add_argument("--docs", action="store_true", help="write docs/bench/autolist.{md,json,png}")
    args = p.parse_args(argv)
    if args.budgets_gb is None:
        args.budgets_gb = [20] if args.smoke else [25, 50, 100]
    if args.smoke:
        args.half_life_shares = args.half_life_shares[:2]
    if args.docs:
        args.out_dir = REPO / "docs" / "bench"
    return args


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    args = parse_args(given)
    results = run(args)
    stem = "autolist" if args.docs else f"autolist-{outputs.stamp()}"
    stem += "-smoke" if args.smoke and not args.docs else ""
    out = args.out_dir / stem
    command = " ".join([".venv/bin/python -m bench.autolist", *given])
    table = results.markdown()
    outputs.write(out, f"`{command}`\n\n{table}", {**results.as_dict(), "command": command})
    write_png(results, out.with_suffix(".png"))
    print(table)
    print(f"bench: written {out}.md, .json and .png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
