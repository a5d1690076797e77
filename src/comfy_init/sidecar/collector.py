"""The one prometheus_client collector of the sidecar: it asks each source for its metrics
on every scrape and never raises.

A source is ``(name, read)`` where ``read(now) -> (families, up)``; a source that raises or
says it is down gets ``comfyinit_source_up{source=name} 0`` and only the families it still
returned (none if it raised).  A failing source is logged when it goes down and when it
comes back, not on every scrape.  Sources read state that is already in memory (or one small
file, or one ``statvfs``): a scrape takes milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from comfy_init import __version__, logs
from comfy_init.sidecar import families

log = logs.get_logger("metrics.collector")

Read = Callable[[float], tuple[list[Metric], bool]]


@dataclass(frozen=True)
class Source:
    name: str
    read: Read


class SidecarCollector(Collector):
    def __init__(
        self,
        sources: list[Source],
        extras: list[Callable[[], list[Metric]]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sources = sources
        self.extras = extras or []
        self.clock = clock
        self._down: dict[str, str] = {}

    def describe(self) -> list[Metric]:
        return []  # nothing fixed to describe; registration must not scrape

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        up = families.gauge("source_up")
        info = families.gauge("build_info")
        info.add_metric([__version__], 1.0)
        yield info
        for source in self.sources:
            try:
                found, ok = source.read(now)
                why = "" if ok else "reported down"
            except Exception as exc:  # one broken source must not fail a scrape
                found, ok, why = [], False, repr(exc)
            self._note(source.name, ok, why)
            up.add_metric([source.name], 1.0 if ok else 0.0)
            yield from found
        for extra in self.extras:
            try:
                found = extra()
            except Exception as exc:  # as above
                log.error("metrics_extra_failed", error=repr(exc))
                continue
            yield from found
        yield up

    def _note(self, name: str, ok: bool, why: str) -> None:
        was_down = name in self._down
        if ok and was_down:
            del self._down[name]
            log.info("metrics_source_up", source=name)
        elif not ok and not was_down:
            self._down[name] = why
            log.warning("metrics_source_down", source=name, error=why)
