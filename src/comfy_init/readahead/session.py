"""One start's readahead: replay the last start's list, record this one, refresh the list.

``Session.begin`` returns at once: the list is read from the volume and replayed in
threads of their own, beside the warmup and ComfyUI (nothing waits for it).  ComfyUI is
started with ``environment()`` (the recording hook).  ``comfyui_ready(at)`` (ComfyUI's first
answer) stops the recording and, in another thread, writes the refreshed list and the
report with how many of ComfyUI's opens found their file read ahead.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from comfy_init import logs
from comfy_init.readahead import report, startlist
from comfy_init.readahead.recorder import Recording
from comfy_init.readahead.replay import Replay
from comfy_init.readahead.trace import Seen
from comfy_init.settings import Settings
from comfy_init.warmup.copier import RateLimiter

log = logs.get_logger("readahead")

STREAMS = 16
CHUNK_BYTES = 8 * 1024 * 1024


@dataclasses.dataclass(frozen=True)
class Options:
    comfyui_path: Path
    report_path: Path  # Settings.readahead_report_path
    trace_dir: Path  # Settings.readahead_trace_dir
    enabled: bool = True
    streams: int = STREAMS
    chunk_bytes: int = CHUNK_BYTES
    max_bytes_per_second: int = 0  # 0: no cap


class Session:
    def __init__(self, options: Options, cancel: threading.Event | None = None) -> None:
        self.options = options
        self.cancel = cancel or threading.Event()
        self.root = startlist.volume_root(options.comfyui_path)
        self.list_path = startlist.location(options.comfyui_path)
        self.report_path = options.report_path
        self.recording = Recording(options.trace_dir, self.root)
        self.replay: Replay | None = None
        self.report = report.Report(state="off" if not options.enabled else "reading")
        self.finished = threading.Event()  # the list and report after ComfyUI's answer
        self._lock = threading.Lock()
        self._ready_seen = False
        self.recording_ok = options.enabled

    @classmethod
    def begin(cls, options: Options, cancel: threading.Event | None = None) -> Session:
        session = cls(options, cancel)
        session._write_report()
        if options.enabled:
            try:
                session.recording.prepare()
            except OSError as exc:  # RUN_DIR's own checks come next and say what to do
                log.warning("readahead_not_recording", path=str(options.trace_dir), error=str(exc))
                session.recording_ok = False
            threading.Thread(target=session._replay, name="readahead", daemon=True).start()
        else:
            session.recording.discard()
        return session

    @classmethod
    def of(cls, settings: Settings) -> Session:
        """This start's readahead, begun."""
        return cls.begin(
            Options(
                comfyui_path=settings.comfyui_path,
                report_path=settings.readahead_report_path,
                trace_dir=settings.readahead_trace_dir,
                enabled=settings.readahead,
                max_bytes_per_second=settings.warmup_max_bytes_per_second,
            )
        )

    def environment(self, inherited_pythonpath: str | None) -> dict[str, str]:
        """ComfyUI's extra environment: the recording hook (nothing when turned off)."""
        if not self.recording_ok:
            return {}
        return self.recording.environment(inherited_pythonpath)

    def comfyui_ready(self, at: float) -> None:
        """ComfyUI answered at ``at`` (monotonic): record what it read, once per start."""
        with self._lock:
            if self._ready_seen or not self.recording_ok:
                return
            self._ready_seen = True
        self.recording.stop()
        threading.Thread(
            target=self._record, args=(at,), name="readahead-list", daemon=True
        ).start()

    # -- threads ------------------------------------------------------------------------
    def _replay(self) -> None:
        try:
            entries = startlist.load(self.list_path)
        except startlist.ListUnreadable as exc:
            log.warning("readahead_list_unreadable", error=str(exc), effect="read nothing ahead")
            self._update(list_error=str(exc))
            entries = []
        listed = [e for e in entries if e.kind == "file"]
        log.info(
            "readahead_started",
            files=len(listed),
            bytes=sum(e.size for e in listed),
            list=str(self.list_path),
        )
        rate = self.options.max_bytes_per_second
        replay = Replay(
            self.root,
            entries,
            streams=self.options.streams,
            chunk_bytes=self.options.chunk_bytes,
            cancel=self.cancel,
            limiter=RateLimiter(rate) if rate else None,
        )
        with self._lock:
            self.replay = replay
        self._update(listed_files=len(listed))
        replay.start().wait()
        o = replay.outcome
        self._update(
            state="done",
            files=o.files,
            bytes=o.bytes,
            dirs=o.dirs,
            missing=o.missing,
            changed=o.changed,
            seconds=round(o.seconds, 3),
        )

    def _record(self, ready_at: float) -> None:
        try:
            seen, opened = self.recording.collect(ready_at)
            entries = _refresh(seen, self.root, self.options.streams)
            with self._lock:
                done_at = dict(self.replay.outcome.done_at) if self.replay else {}
            prefetched = early = unlisted = 0
            exist = {e.path for e in entries if e.kind == "file"}
            for s in seen:
                if s.kind != "file" or s.path not in opened or s.path not in exist:
                    continue  # mapped by the linker, or an open that failed (a missing .pyc)
                done = done_at.get(s.path)
                if done is not None and done <= s.at:
                    prefetched += 1
                elif done is not None or self._listed(s.path):
                    early += 1
                else:
                    unlisted += 1
            try:
                startlist.save(self.list_path, entries, time.time())
                recorded = sum(1 for e in entries if e.kind == "file")
            except OSError as exc:
                log.warning(
                    "readahead_list_not_written",
                    path=str(self.list_path),
                    error=str(exc),
                    hint="the volume must be writable for the next start to read ahead",
                )
                recorded = 0
            log.info(
                "readahead_recorded",
                files=recorded,
                dirs=len(entries) - recorded,
                opens_prefetched=prefetched,
                opens_early=early,
                opens_unlisted=unlisted,
            )
            self._update(
                recorded_files=recorded,
                opens_prefetched=prefetched,
                opens_early=early,
                opens_unlisted=unlisted,
            )
        except Exception as exc:  # a hint failing must never disturb the running ComfyUI
            log.error("readahead_record_failed", error=str(exc), exc_info=exc)
        finally:
            self.finished.set()

    def _listed(self, path: str) -> bool:
        replay = self.replay
        return replay is not None and path in replay.listed

    def _update(self, **changes: object) -> None:
        with self._lock:
            self.report = dataclasses.replace(self.report, **changes)  # type: ignore[arg-type]
        self._write_report()

    def _write_report(self) -> None:
        with self._lock:
            current = self.report
            try:
                report.write(self.report_path, current)
            except OSError as exc:
                log.warning(
                    "readahead_report_not_written", path=str(self.report_path), error=str(exc)
                )


def _refresh(seen: list[Seen], root: Path, streams: int) -> list[startlist.Entry]:
    """``startlist.refresh`` with the volume's stat round trips made in parallel."""
    with ThreadPoolExecutor(max_workers=streams, thread_name_prefix="readahead-stat") as pool:
        found = pool.map(lambda s: _stat(root / s.path), seen)
        stats = dict(zip((s.path for s in seen), found, strict=True))
    return startlist.refresh(seen, stats)


def _stat(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None
