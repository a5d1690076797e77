"""A stand-in for a network volume: a throttled, read-only FUSE mirror of a local directory.

``SlowVolume(backing, mountpoint, Shape(...))`` mounts it for the length of a ``with``.
"""

from bench.slowfs.mount import SlowVolume, SlowVolumeError, Tuning
from bench.slowfs.shaping import MB, Shape

__all__ = ["MB", "Shape", "SlowVolume", "SlowVolumeError", "Tuning"]
