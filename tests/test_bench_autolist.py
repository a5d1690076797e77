"""The learned-warm-list benchmark keeps working and its offline optimum is really optimal.

The smoke run is the real ``python -m bench.autolist --smoke`` (a pure simulation, seconds);
no figure is asserted, only that every part of the result is there and consistent.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # ``bench`` lives beside ``src``, not in the installed package
    sys.path.insert(0, str(REPO))

from bench.autolist.replay import MIB, best_set_bytes, fill  # noqa: E402
from bench.autolist.workload import Model  # noqa: E402

sizes = st.integers(1, 40).map(lambda n: n * MIB)


@settings(max_examples=100, deadline=None)
@given(
    models=st.lists(sizes, min_size=1, max_size=8),
    picks=st.lists(st.integers(0, 7), min_size=1, max_size=30),
    budget_mib=st.integers(0, 120),
)
def test_the_offline_optimum_is_the_best_subset_and_beats_greedy(
    models: list[int], picks: list[int], budget_mib: int
) -> None:
    catalogue = [Model("checkpoints", f"m{i}", s) for i, s in enumerate(models)]
    loads = [catalogue[p % len(catalogue)] for p in picks]
    budget = budget_mib * MIB
    best = 0
    for r in range(len(catalogue) + 1):
        for subset in itertools.combinations(catalogue, r):
            if sum(m.size for m in subset) <= budget:
                keys = {m.key for m in subset}
                best = max(best, sum(m.size for m in loads if m.key in keys))
    assert best_set_bytes(loads, budget) == best
    greedy = fill(sorted(catalogue, key=lambda m: -sum(x is m for x in loads)), budget)
    assert best >= sum(m.size for m in loads if m.key in greedy)


def test_smoke_run_writes_every_table_the_json_and_the_plot(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.autolist", "--smoke", "--out-dir", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    (report,) = tmp_path.glob("autolist-*-smoke.json")
    data = json.loads(report.read_text())
    assert data["command"].startswith(".venv/bin/python -m bench.autolist --smoke")
    (run,) = data["runs"]
    assert len(run["days"]) == run["params"]["days"]
    for day in run["days"]:
        for key in ("static", "auto", "belady", "informed"):
            assert 0.0 <= day[key] <= 1.0
        assert day["auto_bytes"] <= run["setup"]["budget"]
        assert set(day["background"]) == {"score", "first_asked", "density"}
    # the first boot knows nothing; from then on the journals teach @auto
    assert run["days"][0]["auto"] < run["days"][0]["belady"]
    assert any(d["auto"] > 0 for d in run["days"][1:])
    assert len(data["sweep"]) == 2
    table = report.with_suffix(".md").read_text()
    assert "| fleet | 20 GB |" in table
    assert report.with_suffix(".png").stat().st_size > 1000
