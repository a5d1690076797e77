"""The read-only mirror: pyfuse3 operations that serve a backing directory through the shaper.

Every request waits its turn in the timing model (``shaping``) before it is answered:
metadata requests pay one round trip, reads pay the round trip plus their bytes through
the handle's and the mount's pipes.  Data comes from the backing file with ``pread`` in a
worker thread, so a read that misses the backing file's page cache does not stall the
other requests.  Writes are refused (the mount is read-only).
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

import pyfuse3
import trio

from bench.slowfs.shaping import Shaper

# The kernel caches attributes and names for a second, as a MooseFS client caches attributes
# and the entries of a directory it listed (mfsattrcacheto, mfsdirentrycacheto: 1 s).
ATTR_TIMEOUT = 1.0
ENTRY_TIMEOUT = 1.0


@dataclass
class Counters:
    """What the mount served; written to the stats file on request."""

    reads: int = 0
    read_bytes: int = 0
    opens: int = 0
    meta_requests: int = 0
    inflight_reads: int = 0
    max_inflight_reads: int = 0
    open_handles: int = 0
    max_open_handles: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def reset_peaks(self) -> None:
        """Start the peaks afresh, so each stats request reports those since the last."""
        self.max_inflight_reads = self.inflight_reads
        self.max_open_handles = self.open_handles


class Passthrough(pyfuse3.Operations):
    def __init__(self, backing: Path, shaper: Shaper, io_threads: int = 32) -> None:
        super().__init__()
        self.shaper = shaper
        self.counters = Counters()
        self._paths: dict[int, str] = {pyfuse3.ROOT_INODE: str(backing)}
        self._inodes: dict[str, int] = {str(backing): pyfuse3.ROOT_INODE}
        self._dirs: dict[int, list[str]] = {}
        self._next_dir_fh = 1
        # 0 threads: read inline (fastest when the backing files are in the page cache).
        self._io = trio.CapacityLimiter(io_threads) if io_threads > 0 else None

    # --- bookkeeping -------------------------------------------------------------------

    def _inode_of(self, path: str) -> int:
        ino = self._inodes.get(path)
        if ino is None:
            ino = len(self._paths) + pyfuse3.ROOT_INODE
            self._paths[ino] = path
            self._inodes[path] = ino
        return ino

    def _path(self, inode: int) -> str:
        try:
            return self._paths[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _attrs(self, path: str) -> pyfuse3.EntryAttributes:
        try:
            st = os.lstat(path)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        entry = pyfuse3.EntryAttributes()
        entry.st_ino = self._inode_of(path)
        entry.generation = 0
        entry.entry_timeout = ENTRY_TIMEOUT
        entry.attr_timeout = ATTR_TIMEOUT
        entry.st_mode = st.st_mode & ~0o222  # read-only mirror
        entry.st_nlink = st.st_nlink
        entry.st_uid = st.st_uid
        entry.st_gid = st.st_gid
        entry.st_rdev = st.st_rdev
        entry.st_size = st.st_size
        entry.st_blksize = 1 << 20
        entry.st_blocks = st.st_blocks
        entry.st_atime_ns = st.st_atime_ns
        entry.st_mtime_ns = st.st_mtime_ns
        entry.st_ctime_ns = st.st_ctime_ns
        return entry

    async def _round_trip(self) -> None:
        self.counters.meta_requests += 1
        await trio.sleep_until(self.shaper.meta_done_at(trio.current_time()))

    # --- metadata ----------------------------------------------------------------------

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        await self._round_trip()
        parent = self._path(parent_inode)
        if name == b".":
            return self._attrs(parent)
        if name == b"..":
            return self._attrs(
                parent if parent_inode == pyfuse3.ROOT_INODE else str(Path(parent).parent)
            )
        return self._attrs(os.path.join(parent, os.fsdecode(name)))

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        await self._round_trip()
        return self._attrs(self._path(inode))

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        await self._round_trip()
        return os.fsencode(os.readlink(self._path(inode)))

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        await self._round_trip()
        sv = os.statvfs(self._paths[pyfuse3.ROOT_INODE])
        out = pyfuse3.StatvfsData()
        for field in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail"):
            setattr(out, field, getattr(sv, field))
        for field in ("f_files", "f_ffree", "f_favail", "f_namemax"):
            setattr(out, field, getattr(sv, field))
        return out

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        await self._round_trip()
        path = self._path(inode)
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        fh = self._next_dir_fh
        self._next_dir_fh += 1
        self._dirs[fh] = [os.path.join(path, n) for n in names]
        return fh

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        entries = self._dirs.get(fh, [])
        for index in range(start_id, len(entries)):
            path = entries[index]
            try:
                attrs = self._attrs(path)
            except pyfuse3.FUSEError:
                continue  # vanished from the backing directory since opendir
            if not pyfuse3.readdir_reply(
                token, os.fsencode(os.path.basename(path)), attrs, index + 1
            ):
                return

    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    # --- data --------------------------------------------------------------------------

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        await self._round_trip()
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_TRUNC | os.O_APPEND):
            raise pyfuse3.FUSEError(errno.EROFS)
        path = self._path(inode)
        if not stat.S_ISREG(os.lstat(path).st_mode):
            raise pyfuse3.FUSEError(errno.EINVAL)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        self.shaper.open(fd)
        c = self.counters
        c.opens += 1
        c.open_handles += 1
        c.max_open_handles = max(c.max_open_handles, c.open_handles)
        # keep_cache: pages read through one handle serve the others, as on a network volume
        # client whose file did not change; benchmarks drop caches between runs themselves.
        return pyfuse3.FileInfo(fh=fd, keep_cache=True)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        c = self.counters
        c.reads += 1
        c.inflight_reads += 1
        c.max_inflight_reads = max(c.max_inflight_reads, c.inflight_reads)
        try:
            await trio.sleep_until(self.shaper.read_done_at(trio.current_time(), fh, size))
            if self._io is None:
                data = os.pread(fh, size, off)
            else:
                data = await trio.to_thread.run_sync(os.pread, fh, size, off, limiter=self._io)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        finally:
            c.inflight_reads -= 1
        c.read_bytes += len(data)
        return data

    async def release(self, fh: int) -> None:
        self.shaper.release(fh)
        self.counters.open_handles -= 1
        os.close(fh)
