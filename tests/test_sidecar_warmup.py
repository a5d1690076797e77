"""Warmup metrics come from the warmup report, fresh on every scrape."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.registry import CollectorRegistry

from comfy_init.sidecar.collector import SidecarCollector, Source
from comfy_init.sidecar.warmup_source import WarmupSource
from comfy_init.warmup.report import FileRecord, Report, SkippedLine, Totals, write_report

GB = 1_000_000_000


def record(type_: str, name: str, status: str, size: int, seconds: float = 0.0) -> FileRecord:
    return FileRecord(
        type=type_,
        name=name,
        source=f"/vol/models/{type_}/{name}",
        dest=f"/cache/{type_}/{name}",
        size=size,
        status=status,  # type: ignore[arg-type]
        bytes_copied=size if status == "copied" else 0,
        seconds=seconds,
    )


def finished_report() -> Report:
    files = [
        record("checkpoints", "sdxl.safetensors", "copied", 6 * GB, seconds=31.0),
        record("checkpoints", "flux.safetensors", "hit", 23 * GB),
        record("loras", "detail.safetensors", "copied", 200_000_000, seconds=0.8),
        record("loras", "big.safetensors", "skipped_space", 2 * GB),
        record("vae", "missing/*.pt", "missing", 0),
        record("vae", "broken.pt", "failed", 300_000_000),
    ]
    return Report(
        state="done",
        pid=10,
        started_at=1_700_000_000.0,
        finished_at=1_700_000_040.0,
        config="/workspace/warmup_models.conf",
        models_path="/vol/models",
        cache_path="/cache",
        files=files,
        totals=Totals.of(files, 40.0),
    )


def registry_for(report_path: Path, clock: float = 1_700_000_100.0) -> CollectorRegistry:
    source = WarmupSource(report_path)
    registry = CollectorRegistry()
    registry.register(
        SidecarCollector(
            [Source("warmup_report", lambda now: (source.collect(now), True))],
            clock=lambda: clock,
        )
    )
    return registry


def test_files_and_bytes_are_counted_by_type_and_outcome(tmp_path: Path) -> None:
    path = tmp_path / "warmup-report.json"
    write_report(path, finished_report())
    reg = registry_for(path)

    def files(t: str, o: str) -> float | None:
        return reg.get_sample_value("comfyinit_warmup_files", {"type": t, "outcome": o})

    assert files("checkpoints", "copied") == 1
    assert files("checkpoints", "hit") == 1
    assert files("checkpoints", "failed") == 0  # every outcome exists for a type
    assert files("loras", "skipped_space") == 1
    assert files("vae", "missing") == 1
    assert files("vae", "failed") == 1
    assert reg.get_sample_value(
        "comfyinit_warmup_bytes", {"type": "checkpoints", "outcome": "hit"}
    ) == float(23 * GB)
    assert reg.get_sample_value("comfyinit_warmup_copied_bytes") == float(6 * GB + 200_000_000)
    assert reg.get_sample_value("comfyinit_source_up", {"source": "warmup_report"}) == 1


def test_copy_durations_fill_a_histogram_of_copied_files_only(tmp_path: Path) -> None:
    path = tmp_path / "warmup-report.json"
    write_report(path, finished_report())
    reg = registry_for(path)
    name = "comfyinit_warmup_copy_duration_seconds"
    assert reg.get_sample_value(f"{name}_count") == 2  # the hit took no copy
    assert reg.get_sample_value(f"{name}_sum") == 31.8
    assert reg.get_sample_value(f"{name}_bucket", {"le": "1.0"}) == 1
    assert reg.get_sample_value(f"{name}_bucket", {"le": "30.0"}) == 1
    assert reg.get_sample_value(f"{name}_bucket", {"le": "60.0"}) == 2
    assert reg.get_sample_value(f"{name}_bucket", {"le": "+Inf"}) == 2


def test_finished_warmup_reports_state_duration_throughput_and_finish_time(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warmup-report.json"
    write_report(path, finished_report())
    reg = registry_for(path)
    assert reg.get_sample_value("comfyinit_warmup_state", {"state": "done"}) == 1
    assert reg.get_sample_value("comfyinit_warmup_state", {"state": "running"}) == 0
    assert reg.get_sample_value("comfyinit_warmup_duration_seconds") == 40.0
    assert reg.get_sample_value("comfyinit_warmup_throughput_bytes_per_second") == (
        (6 * GB + 200_000_000) / 40.0
    )
    assert reg.get_sample_value("comfyinit_warmup_finished_timestamp_seconds") == 1_700_000_040.0
    assert reg.get_sample_value("comfyinit_warmup_started_timestamp_seconds") == 1_700_000_000.0


def test_running_warmup_is_followed_live_as_the_report_is_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "warmup-report.json"
    files = [
        record("checkpoints", "a.safetensors", "copying", 4 * GB),
        record("loras", "b.safetensors", "pending", GB),
    ]
    files[0].bytes_copied = GB
    report = Report("running", 10, 1_700_000_000.0, "c", "/vol/models", "/cache", files=files)
    write_report(path, report)
    reg = registry_for(path, clock=1_700_000_010.0)
    assert reg.get_sample_value("comfyinit_warmup_state", {"state": "running"}) == 1
    assert reg.get_sample_value("comfyinit_warmup_duration_seconds") == 10.0
    assert reg.get_sample_value("comfyinit_warmup_copied_bytes") == GB
    assert reg.get_sample_value("comfyinit_warmup_throughput_bytes_per_second") == GB / 10
    assert reg.get_sample_value("comfyinit_warmup_finished_timestamp_seconds") is None
    assert (
        reg.get_sample_value("comfyinit_warmup_files", {"type": "loras", "outcome": "pending"}) == 1
    )

    files[0].status, files[0].bytes_copied, files[0].seconds = "copied", 4 * GB, 9.0
    write_report(path, report)
    assert (
        reg.get_sample_value("comfyinit_warmup_files", {"type": "checkpoints", "outcome": "copied"})
        == 1
    )
    assert reg.get_sample_value("comfyinit_warmup_copied_bytes") == 4 * GB
    assert reg.get_sample_value("comfyinit_warmup_copy_duration_seconds_count") == 1


def test_no_report_means_no_warmup_metrics_and_the_source_is_up(tmp_path: Path) -> None:
    reg = registry_for(tmp_path / "absent.json")
    assert reg.get_sample_value("comfyinit_source_up", {"source": "warmup_report"}) == 1
    assert reg.get_sample_value("comfyinit_warmup_duration_seconds") is None


def test_corrupt_report_flags_the_source_down_and_the_scrape_still_works(
    tmp_path: Path,
) -> None:
    path = tmp_path / "warmup-report.json"
    path.write_text('{"version": 1, "state": "runn', encoding="utf-8")
    reg = registry_for(path)
    assert reg.get_sample_value("comfyinit_source_up", {"source": "warmup_report"}) == 0
    assert reg.get_sample_value("comfyinit_build_info", {"version": "0.1.0"}) == 1
    path.write_text('{"version": 99}', encoding="utf-8")
    assert reg.get_sample_value("comfyinit_source_up", {"source": "warmup_report"}) == 0


def test_skipped_lines_and_user_yaml_problems_are_counted_by_reason(
    tmp_path: Path,
) -> None:
    report = finished_report()
    report.skipped = [
        SkippedLine("w.conf:2", "loras/../x", "invalid", "w.conf:2: ..."),
        SkippedLine("w.conf:5", "loras/*", "link_outside", "w.conf:5: ..."),
        SkippedLine("w.conf:5", "loras/*", "link_outside", "w.conf:5: ..."),
    ]
    report.user_yaml_problems = ["/w/ComfyUI/extra_model_paths.yaml:3: a list"]
    path = tmp_path / "warmup-report.json"
    write_report(path, report)
    reg = registry_for(path)

    def skipped(reason: str) -> float | None:
        return reg.get_sample_value("comfyinit_warmup_skipped_lines", {"reason": reason})

    assert (skipped("invalid"), skipped("link_outside"), skipped("link_loop")) == (1, 2, 0)
    assert skipped("user_yaml") == 1
