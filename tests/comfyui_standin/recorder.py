"""The stand-in's event record: one JSON line per event appended to ``$STANDIN_RECORD``.

The start event captures what the process inherited from whoever started it: ids, argv, cwd,
the whole environment, open file descriptors and the signal masks from /proc/self/status.
Python itself ignores SIGPIPE and SIGXFSZ at start-up, so those two bits of ``sigign`` are
always set whatever the parent did; ``sigblk`` (the blocked mask) is exactly as inherited.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

_lock = threading.RLock()  # re-entrant: a signal handler may record while main records


def record(**event: Any) -> None:
    """Append one JSON line to $STANDIN_RECORD (no-op when unset)."""
    path = os.environ.get("STANDIN_RECORD")
    if not path:
        return
    event["t"] = time.time()
    line = json.dumps(event, default=str) + "\n"
    with _lock, open(path, "a", encoding="utf-8") as f:
        f.write(line)


def open_fds() -> list[int]:
    """Open fd numbers, without the one that listing /proc/self/fd itself used."""
    listed = [int(n) for n in os.listdir("/proc/self/fd")]
    alive = []
    for fd in listed:  # the listing's own fd is closed by now: fstat fails for it alone
        try:
            os.fstat(fd)
        except OSError:
            continue
        alive.append(fd)
    return alive


def signal_masks() -> dict[str, int]:
    masks = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("SigBlk", "SigIgn", "SigCgt"):
                masks[key.lower()] = int(value.strip(), 16)
    return masks


def start_record() -> None:
    fds = open_fds()  # before the record file is opened
    record(
        event="start",
        pid=os.getpid(),
        ppid=os.getppid(),
        pgid=os.getpgid(0),
        sid=os.getsid(0),
        argv=sys.argv,
        cwd=os.getcwd(),
        env=dict(os.environ),
        fds=fds,
        **signal_masks(),
    )
