"""The sidecar's recorder: batched appends of ComfyUI's opens, and a volume that refuses them."""

from __future__ import annotations

import threading
from pathlib import Path

from structlog.testing import capture_logs

from comfy_init.usage import journal
from comfy_init.usage.recorder import Recorder
from comfy_init.usage.records import Boot, Open


class Clock:
    def __init__(self, t: float = 1_790_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def model(models: Path, rel: str, size: int = 64) -> Path:
    path = models / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def test_opens_are_written_in_one_batch_with_the_boot_first(tmp_path: Path) -> None:
    clock = Clock()
    ckpt = model(tmp_path / "models", "checkpoints/sd.safetensors", 64)
    lora = model(tmp_path / "cache", "loras/sub/x.safetensors", 32)
    path = tmp_path / "usage" / "pod.jsonl"
    rec = Recorder(path, keep_days=14, clock=clock)
    rec.flush()
    assert not path.exists()  # a pod that loads nothing writes nothing
    clock.t += 10
    rec.record("checkpoints", "sd.safetensors", ckpt, "volume")
    clock.t += 1
    rec.record("loras", "sub/x.safetensors", lora, "cache")
    assert not path.exists()  # batched: nothing written before the flush
    rec.flush()
    st_ckpt, st_lora = ckpt.stat(), lora.stat()
    assert journal.read(path).records == [
        Boot(clock.t - 11),
        Open(clock.t - 1, "checkpoints", "sd.safetensors", 64, st_ckpt.st_mtime_ns, "volume"),
        Open(clock.t, "loras", "sub/x.safetensors", 32, st_lora.st_mtime_ns, "cache"),
    ]
    assert (rec.written, rec.errors) == (3, 0)


def test_an_open_file_that_vanished_before_the_flush_is_not_recorded(tmp_path: Path) -> None:
    gone = model(tmp_path, "checkpoints/gone.safetensors")
    rec = Recorder(tmp_path / "pod.jsonl", keep_days=14, clock=Clock())
    rec.record("checkpoints", "gone.safetensors", gone, "volume")
    gone.unlink()
    rec.flush()
    assert not (tmp_path / "pod.jsonl").exists()


def test_an_unwritable_journal_warns_once_counts_each_failure_and_keeps_the_records(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "usage"
    blocker.write_text("a file where the usage folder should be\n")
    clock = Clock()
    ckpt = model(tmp_path, "checkpoints/a.safetensors")
    rec = Recorder(blocker / "pod.jsonl", keep_days=14, clock=clock)
    with capture_logs() as logged:
        for _ in range(3):
            rec.record("checkpoints", "a.safetensors", ckpt, "volume")
            rec.flush()
    assert (rec.errors, rec.written) == (3, 0)
    assert [e["event"] for e in logged] == ["usage_journal_unwritable"]
    assert logged[0]["path"] == str(blocker / "pod.jsonl")
    blocker.unlink()  # the volume is back
    rec.flush()
    assert rec.written == 4  # the boot and the three opens, kept meanwhile
    recs = journal.read(blocker / "pod.jsonl").records
    assert [type(r).__name__ for r in recs] == ["Boot", "Open", "Open", "Open"]


def test_the_recorder_compacts_its_journal_as_it_grows(tmp_path: Path) -> None:
    clock = Clock()
    ckpt = model(tmp_path, "checkpoints/a.safetensors")
    path = tmp_path / "pod.jsonl"
    rec = Recorder(path, keep_days=14, clock=clock, compact_bytes=2048)
    rec.writer.keep_recent = 5
    for _ in range(100):
        clock.t += 60
        rec.record("checkpoints", "a.safetensors", ckpt, "volume")
        rec.flush()
    assert path.stat().st_size < 2 * 2048
    recs = journal.read(path).records
    opens = sum(r.opens if hasattr(r, "opens") else isinstance(r, Open) for r in recs)
    assert opens == 100


def test_run_flushes_on_stop(tmp_path: Path) -> None:
    path = tmp_path / "pod.jsonl"
    rec = Recorder(path, keep_days=14)
    rec.record(
        "checkpoints", "a.safetensors", model(tmp_path, "checkpoints/a.safetensors"), "cache"
    )
    stop = threading.Event()
    thread = threading.Thread(target=rec.run, args=(stop, 3600.0))
    thread.start()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert [type(r).__name__ for r in journal.read(path).records] == ["Boot", "Open"]
