"""When a read on the slow volume completes: the pure timing model of the stand-in.

A network volume answers every request after a round trip (``latency``), and moves bytes
through two pipes: one per open file handle (a client stream keeps few requests in
flight, so a stream has its own ceiling) and one for the whole mount (the link and the
storage servers).  Each pipe serves bytes one request after the other at its rate; a
request is done when both pipes have moved its bytes and the round trip has passed.

Time is a plain float (seconds on a monotonic clock) passed in by the caller, so the
model is tested without sleeping.
"""

from __future__ import annotations

from dataclasses import dataclass

MB = 1_000_000


@dataclass(frozen=True)
class Shape:
    """The character of the volume; a rate of 0 means no cap."""

    latency: float = 0.0015  # seconds per request (data and metadata)
    handle_rate: float = 80 * MB  # bytes/s of one open file handle
    mount_rate: float = 400 * MB  # bytes/s of the whole mount

    def __post_init__(self) -> None:
        if self.latency < 0 or self.handle_rate < 0 or self.mount_rate < 0:
            raise ValueError(f"latency and rates must not be negative: {self}")

    @property
    def throttled(self) -> bool:
        return self.latency > 0 or self.handle_rate > 0 or self.mount_rate > 0

    def describe(self) -> str:
        def rate(r: float) -> str:
            return "uncapped" if r == 0 else f"{r / MB:g} MB/s"

        return (
            f"latency {self.latency * 1000:g} ms/request, per handle {rate(self.handle_rate)}, "
            f"per mount {rate(self.mount_rate)}"
        )


class Pipe:
    """Bytes flow through at ``rate``, one request after the other (first come, first served).

    ``rate`` 0 is an infinitely wide pipe.
    """

    __slots__ = ("free_at", "rate")

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.free_at = 0.0

    def reserve(self, now: float, nbytes: int) -> float:
        """Book ``nbytes`` arriving at ``now``; return when the last byte is through."""
        if self.rate == 0:
            return now
        start = max(now, self.free_at)
        self.free_at = start + nbytes / self.rate
        return self.free_at


class Shaper:
    """The mount-wide pipe plus one pipe per open file handle."""

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        self.mount = Pipe(shape.mount_rate)
        self.handles: dict[int, Pipe] = {}

    def open(self, fh: int) -> None:
        self.handles[fh] = Pipe(self.shape.handle_rate)

    def release(self, fh: int) -> None:
        self.handles.pop(fh, None)

    def read_done_at(self, now: float, fh: int, nbytes: int) -> float:
        """When a read of ``nbytes`` on handle ``fh`` that arrives at ``now`` completes."""
        handle = self.handles.get(fh)
        if handle is None:  # a handle we never saw opened still gets a pipe of its own
            handle = self.handles[fh] = Pipe(self.shape.handle_rate)
        through = max(handle.reserve(now, nbytes), self.mount.reserve(now, nbytes))
        return through + self.shape.latency

    def meta_done_at(self, now: float) -> float:
        """When a metadata request (lookup, getattr, readdir, open) arriving at ``now`` is done."""
        return now + self.shape.latency
