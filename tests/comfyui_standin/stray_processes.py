"""Processes the stand-in leaves behind on request, to test what PID 1 does about them.

Both fork twice so the process of interest is re-parented to PID 1 (or the nearest
subreaper): orphans exit at once and stay zombies until PID 1 reaps them; the escapee leaves
the stand-in's process group and session and ignores SIGTERM, so only a kill of every
process in the namespace (or SIGKILL by pid) ends it.
"""

from __future__ import annotations

import os
import signal
import struct
import sys
import warnings


def spawn_orphans(n: int) -> list[int]:
    """Fork n children that each fork a grandchild and exit: the grandchildren (which exit at
    once) are re-parented to PID 1 and stay zombies unless it reaps them."""
    read_end, write_end = os.pipe()
    pids = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        for _ in range(n):
            child = os.fork()
            if child == 0:
                grandchild = os.fork()
                if grandchild == 0:
                    os._exit(0)
                os.write(write_end, struct.pack("<i", grandchild))
                os._exit(0)
            os.waitpid(child, 0)
            pids.append(struct.unpack("<i", os.read(read_end, 4))[0])
    os.close(read_end)
    os.close(write_end)
    return pids


def spawn_escapee() -> int:
    """Start a grandchild in its own session that ignores SIGTERM and sleeps forever."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
        if child == 0:
            if os.fork() == 0:
                os.setsid()
                for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGQUIT):
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_SETMASK, set())  # forked from a server thread
                os.write(write_end, struct.pack("<i", os.getpid()))
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                code = "import time\nwhile True: time.sleep(3600)"
                os.execv(  # noqa: S606 - a fixed interpreter and argument list
                    sys.executable,
                    [sys.executable, "-c", code, "comfyui-standin-escapee"],
                )
            os._exit(0)
    os.waitpid(child, 0)
    (pid,) = struct.unpack("<i", os.read(read_end, 4))
    os.close(read_end)
    os.close(write_end)
    return int(pid)
