"""What one catalog entry is: a metric's name, type, help, labels and unit.

The entries themselves are in ``catalog.py`` (and, for the learned warm list, in
``usage_catalog.py``, which ``catalog.METRICS`` includes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PREFIX = "comfyinit_"

MetricType = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class Metric:
    name: str  # full exposition name; counters end in _total
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""  # base unit, also the name's suffix (before _total); "" if none

    @property
    def family_name(self) -> str:
        """The name without ``_total``: what a counter family is called in OpenMetrics."""
        if self.type == "counter":
            return self.name.removesuffix("_total")
        return self.name


def entry(
    name: str, kind: MetricType, text: str, labels: tuple[str, ...] = (), unit: str = ""
) -> Metric:
    """A catalog entry; ``name`` without the prefix."""
    return Metric(PREFIX + name, kind, text, labels, unit)
