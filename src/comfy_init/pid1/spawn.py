"""Start a child with a clean signal state: default dispositions, nothing blocked.

PID 1 catches the stop signals and may have others ignored by whoever started it; a child
must not inherit any of that across exec.  ``os.posix_spawn`` resets every catchable signal
to its default action and empties the signal mask in the child, before the exec, so there is
no window in which the child runs with our handlers' state.  The child gets a session of its
own: a Ctrl-C on the terminal of a dev shell reaches PID 1 only, which then stops everything
in order.

One exception we cannot avoid: glibc's ``posix_spawn`` sets its two reserved signals (32 and
33, used for thread cancellation and setuid across threads) to "ignore" in the child, and no
program can name them in a signal set.  glibc installs its own handlers for them when it
needs them, so this has no effect on ComfyUI or supervisord.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping, Sequence

from comfy_init.errors import EnvironmentMissing

# Signals whose disposition cannot be changed; naming them in setsigdef is an error.
_UNCATCHABLE = {signal.SIGKILL, signal.SIGSTOP}


def default_signals() -> set[signal.Signals]:
    """Every signal a child should find at its default action."""
    return {s for s in signal.valid_signals() if s not in _UNCATCHABLE}


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    new_session: bool = True,
) -> int:
    """Start ``argv`` (``argv[0]`` an absolute path) and return its pid; never waits."""
    try:
        return os.posix_spawn(
            argv[0],
            list(argv),
            dict(os.environ if env is None else env),
            setsigdef=default_signals(),
            setsigmask=(),
            setsid=new_session,
        )
    except OSError as exc:
        raise EnvironmentMissing(
            f"cannot start {argv[0]}: {exc.strerror} (check that it exists and is executable)"
        ) from None
