"""Readahead metrics, from the readahead report, through the sidecar's collector."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from comfy_init.readahead import report
from comfy_init.readahead.report import Report
from comfy_init.sidecar.collector import SidecarCollector, Source
from comfy_init.sidecar.readahead_source import ReadaheadSource

DONE = Report(
    state="done",
    listed_files=10,
    files=9,
    bytes=123456,
    dirs=2,
    missing=1,
    changed=2,
    seconds=1.5,
    opens_prefetched=7,
    opens_early=1,
    opens_unlisted=3,
    recorded_files=11,
)


def scrape(path: Path) -> str:
    registry = CollectorRegistry()
    source = ReadaheadSource(path)
    registry.register(SidecarCollector([Source(source.name, source.collect)]))
    return generate_latest(registry).decode()


def test_a_finished_readahead_is_files_bytes_seconds_and_opens(tmp_path: Path) -> None:
    path = tmp_path / "readahead-report.json"
    report.write(path, DONE)
    text = scrape(path)
    for line in (
        'comfyinit_readahead_files{outcome="read"} 7.0',
        'comfyinit_readahead_files{outcome="changed"} 2.0',
        'comfyinit_readahead_files{outcome="missing"} 1.0',
        "comfyinit_readahead_bytes 123456.0",
        "comfyinit_readahead_duration_seconds 1.5",
        'comfyinit_readahead_opens{found="prefetched"} 7.0',
        'comfyinit_readahead_opens{found="early"} 1.0',
        'comfyinit_readahead_opens{found="unlisted"} 3.0',
        'comfyinit_source_up{source="readahead_report"} 1.0',
    ):
        assert line in text.splitlines(), line


def test_no_report_or_turned_off_means_no_readahead_metrics_and_the_source_up(
    tmp_path: Path,
) -> None:
    path = tmp_path / "readahead-report.json"
    assert "comfyinit_readahead_" not in scrape(path)
    report.write(path, Report(state="off"))
    text = scrape(path)
    assert "comfyinit_readahead_" not in text
    assert 'comfyinit_source_up{source="readahead_report"} 1.0' in text


@pytest.mark.parametrize(
    "text", ["{not json", "[]", '{"state": "done", "files": "many"}', '{"bytes": true}']
)
def test_a_corrupt_report_marks_the_source_down_and_the_scrape_still_works(
    tmp_path: Path, text: str
) -> None:
    path = tmp_path / "readahead-report.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"readahead report|JSON|Expecting"):
        report.read(path)
    scraped = scrape(path)
    assert 'comfyinit_source_up{source="readahead_report"} 0.0' in scraped
    assert "comfyinit_readahead_files" not in scraped


def test_the_report_round_trips_and_ignores_fields_it_does_not_know(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    report.write(path, DONE)
    assert report.read(path) == DONE
    path.write_text('{"state": "reading", "seconds": 2, "later_field": 1}')
    assert report.read(path) == dataclasses.replace(Report(state="reading"), seconds=2.0)
