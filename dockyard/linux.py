"""Thin wrappers over the Linux system calls that Python's os module lacks (mount, umount2...).

One seam for them, so the rest of the code reads as plain Python and errors carry the call and the path.
"""

from __future__ import annotations

import errno
import os
from functools import lru_cache

TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MNT_DETACH = 0x2

# The mount namespace this process started in, once it has moved to a private one (a build does, see
# build/sandbox.py): a process started from here that must outlive us, the monitor, goes back to it.
original_mount_namespace: int | None = None


@lru_cache(maxsize=None)
def libc() -> ctypes.CDLL:
    import ctypes  # here, not at the top: ctypes costs start-up time that most commands don't need

    # Try the glibc soname first: ctypes.util.find_library runs `ldconfig -p` in a subprocess (milliseconds).
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c") or "libc.so.6", use_errno=True)


def _check(result: int, what: str) -> int:
    if result < 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def mount(source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
    import ctypes

    _check(
        libc().mount(
            source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {fstype or ''} {source} on {target}" + (f" ({data})" if data else ""),
    )


def umount(target: str, flags: int = 0) -> None:
    _check(libc().umount2(target.encode(), flags), f"umount {target}")


def umount_if_mounted(target: str) -> bool:
    """Detach a mount; return False when nothing was mounted there."""
    try:
        umount(target, MNT_DETACH)
        return True
    except OSError as e:
        if e.errno in (errno.EINVAL, errno.ENOENT):
            return False
        raise


PR_SET_CHILD_SUBREAPER = 36


def set_child_subreaper() -> None:
    """Orphaned descendants get re-parented to this process instead of init (so it can reap them)."""
    _check(libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl(PR_SET_CHILD_SUBREAPER)")


SYNC_FILE_RANGE_WRITE = 2
WRITEBACK_STEP = 8 << 20


class EarlyWriteback:
    """Has the kernel start writing a growing file to disk every WRITEBACK_STEP bytes (sync_file_range(2)
    with SYNC_FILE_RANGE_WRITE: it starts the writes and does not wait for them).

    A blob is fsynced before it becomes visible. Left to the end, that fsync waits for the whole file: 25 ms for
    a 52 MB layer here, on the critical path of a pull. Started along the way, the disk works while the data
    still streams in, and the fsync waits for the last step only. (PostgreSQL's checkpointer does the same.)
    """

    def __init__(self, fd: int, start: int = 0) -> None:
        self.fd = fd
        self.started = start  # bytes [0, started) have had their writeback started (or are not ours to start)

    def due(self, end: int) -> bool:
        return end - self.started >= WRITEBACK_STEP

    def wrote(self, end: int) -> None:
        """The file now has `end` bytes, all of them in the kernel's hands (none in a user-space buffer)."""
        if self.due(end):
            _sync_file_range(self.fd, self.started, end - self.started, SYNC_FILE_RANGE_WRITE)
            self.started = end


def _sync_file_range(fd: int, offset: int, length: int, flags: int) -> int:
    """0, or -1 with errno set. Only a hint where it is used: the fsync that follows is what counts."""
    return _sync_file_range_function()(fd, offset, length, flags)


@lru_cache(maxsize=None)
def _sync_file_range_function():  # type: ignore[no-untyped-def]
    import ctypes

    function = libc().sync_file_range
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


def is_mountpoint(path: str) -> bool:
    try:
        return os.path.ismount(path)
    except OSError:
        return False
