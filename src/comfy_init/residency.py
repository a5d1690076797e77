"""How much of a file is in the page cache (RAM), without reading it.

A model whose pages are resident loads onto the GPU several times faster than one read
from disk, so ``warmup --status`` and the metrics sidecar report it.

``cachestat(2)`` (Linux 6.5+) answers for the whole file in one call.  Without it (older
kernel, or a seccomp profile that refuses unknown syscalls) the file is mapped in windows
and ``mincore(2)`` reports one byte per page; windows keep the vector small for multi-GB
files, and mapping a file does not read it.  ``mincore`` on a file the caller neither owns
nor may write reports only pages this process has mapped; run as the file's owner or root.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import stat
from pathlib import Path

PAGE_SIZE = mmap.PAGESIZE
# cachestat(2) has the same number on x86-64 and on arm64 (the generic syscall table).
_CACHESTAT_NR = {"x86_64": 451, "aarch64": 451, "arm64": 451}.get(platform.machine())
# mincore() windows: 1 GiB of file per call, i.e. a 256 KiB vector with 4 KiB pages.
WINDOW_BYTES = 1 << 30
_BIT0 = bytes(b & 1 for b in range(256))  # maps each vector byte to its "resident" bit

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = (
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
)
_libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
_MAP_FAILED = ctypes.c_void_p(-1).value


class _CachestatRange(ctypes.Structure):
    _fields_ = (("off", ctypes.c_uint64), ("len", ctypes.c_uint64))


class _Cachestat(ctypes.Structure):
    _fields_ = (
        ("nr_cache", ctypes.c_uint64),
        ("nr_dirty", ctypes.c_uint64),
        ("nr_writeback", ctypes.c_uint64),
        ("nr_evicted", ctypes.c_uint64),
        ("nr_recently_evicted", ctypes.c_uint64),
    )


def cachestat_pages(fd: int) -> int | None:
    """Pages of the open file ``fd`` in the page cache, by cachestat(2); None if unavailable."""
    if _CACHESTAT_NR is None:
        return None
    whole_file = _CachestatRange(0, 0)  # len 0: up to the end of the file
    result = _Cachestat()
    rc = _libc.syscall(
        _CACHESTAT_NR, fd, ctypes.byref(whole_file), ctypes.byref(result), ctypes.c_uint(0)
    )
    if rc != 0:  # ENOSYS (old kernel), EPERM (seccomp), EOPNOTSUPP: use mincore instead
        return None
    return int(result.nr_cache)


def mincore_pages(fd: int, size: int, window: int = WINDOW_BYTES) -> int:
    """Pages of the open file ``fd`` (``size`` bytes) in the page cache, by mincore(2)."""
    window = max(PAGE_SIZE, window - window % PAGE_SIZE)
    pages = 0
    for offset in range(0, size, window):
        length = min(window, size - offset)
        addr = _libc.mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, offset)
        if addr in (None, _MAP_FAILED):
            err = ctypes.get_errno()
            raise OSError(err, f"mmap for mincore: {os.strerror(err)}")
        try:
            vec = ctypes.create_string_buffer((length + PAGE_SIZE - 1) // PAGE_SIZE)
            if _libc.mincore(addr, length, vec) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"mincore: {os.strerror(err)}")
            pages += vec.raw.translate(_BIT0).count(1)
        finally:
            _libc.munmap(addr, length)
    return pages


def resident(path: Path) -> tuple[int, int] | None:
    """(bytes of ``path`` in the page cache, file size); None if it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        size = st.st_size
        if size == 0:
            return (0, 0)
        pages = cachestat_pages(fd)
        if pages is None:
            try:
                pages = mincore_pages(fd, size)
            except OSError:
                return None
        return (min(pages * PAGE_SIZE, size), size)
    finally:
        os.close(fd)
