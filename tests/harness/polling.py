"""``wait_for``: poll a condition until it holds or its deadline passes.

Tests and benchmarks wait for processes this way (a ready line, a file, a port), never with a
fixed sleep: the wait ends as soon as the condition holds, and a condition that never holds
fails with what was awaited instead of hanging.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A condition did not hold within its deadline (an AssertionError: a failed test)."""


def wait_for(predicate: Callable[[], T], timeout: float, what: str, step: float = 0.05) -> T:
    """Call ``predicate`` every ``step`` s until it returns something truthy and return that;
    raise ``WaitTimeout`` naming ``what`` once ``timeout`` s have passed.  The predicate is
    always called at least once, and once more after the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > end:
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(step)
