"""The metrics catalog follows Prometheus naming conventions and the README lists it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from comfy_init.sidecar import catalog, families

README = Path(__file__).resolve().parent.parent / "README.md"
BASE_UNITS = ("seconds", "bytes", "bytes_per_second")


@pytest.mark.parametrize("metric", catalog.METRICS, ids=lambda m: m.name)
def test_each_metric_has_the_prefix_help_and_a_snake_case_name(metric: catalog.Metric) -> None:
    assert metric.name.startswith("comfyinit_")
    assert re.fullmatch(r"[a-z][a-z0-9_]*", metric.name)
    assert metric.help.strip()
    assert metric.help.endswith(".")
    assert len(set(metric.labels)) == len(metric.labels)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", label) for label in metric.labels)
    assert "le" not in metric.labels
    assert "quantile" not in metric.labels


@pytest.mark.parametrize("metric", catalog.METRICS, ids=lambda m: m.name)
def test_counters_and_only_counters_end_in_total(metric: catalog.Metric) -> None:
    assert metric.name.endswith("_total") == (metric.type == "counter")


@pytest.mark.parametrize("metric", catalog.METRICS, ids=lambda m: m.name)
def test_a_unit_is_a_base_unit_and_the_name_ends_with_it(metric: catalog.Metric) -> None:
    if metric.unit:
        assert metric.unit in BASE_UNITS
        assert metric.family_name.endswith("_" + metric.unit)
    for word in ("milliseconds", "_ms", "kilobytes", "megabytes", "_mb", "minutes", "hours"):
        assert word not in metric.name


def test_names_are_unique_and_histogram_series_do_not_collide_with_other_metrics() -> None:
    names = [m.name for m in catalog.METRICS]
    assert len(names) == len(set(names))
    series = [s for m in catalog.METRICS for s in catalog.series_names(m)]
    assert len(series) == len(set(series))


def test_copy_duration_buckets_are_sorted_and_reach_multi_gigabyte_copies() -> None:
    bounds = catalog.COPY_SECONDS_BUCKETS
    assert list(bounds) == sorted(set(bounds))
    # a 40 GB checkpoint at 100 MB/s takes 400 s: it must land in a finite bucket
    assert bounds[-1] >= 600


def test_get_accepts_a_name_with_or_without_the_prefix() -> None:
    assert catalog.get("model_opens_total") is catalog.get("comfyinit_model_opens_total")
    with pytest.raises(KeyError):
        catalog.get("no_such_metric")


def test_families_refuse_a_metric_of_another_type() -> None:
    with pytest.raises(TypeError, match="is a counter, not a gauge"):
        families.gauge("model_opens_total")


def test_cumulative_buckets_count_a_value_on_a_bound_in_that_bucket() -> None:
    buckets, total = families.cumulative_buckets([0.5, 1.0, 3.0, 5000.0], (1.0, 2.0, 4.0))
    assert buckets == [("1.0", 2.0), ("2.0", 2.0), ("4.0", 3.0), ("+Inf", 4.0)]
    assert total == 5004.5


def _readme_metrics_rows() -> list[str]:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^## Metrics\s*$(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "README has no '## Metrics' section"
    lines = [line for line in match.group(1).splitlines() if line.startswith("| `comfyinit_")]
    return lines


def test_readme_metrics_table_is_the_catalog() -> None:
    expected = [
        line for line in catalog.markdown_table().splitlines() if line.startswith("| `comfyinit_")
    ]
    assert _readme_metrics_rows() == expected, (
        "README '## Metrics' table is out of step with src/comfy_init/sidecar/catalog.py; "
        "regenerate it with: python -c 'from comfy_init.sidecar.catalog import markdown_table; "
        "print(markdown_table())'"
    )
