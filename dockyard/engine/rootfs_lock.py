"""One writer of a stopped container's writable layer at a time: `cp` into it, or the monitor starting it.

`cp` into a stopped container mounts the container's snapshot read-write (detached, see container_root.py).
If the monitor mounted the same upper directory for a start meanwhile, two overlay mounts would share it,
which overlayfs leaves undefined. So `cp` holds this lock while its mount lives, and the monitor takes it,
without waiting (one slow copy must not stall every container), around mounting the rootfs.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from dockyard.errors import Conflict

LOCK_NAME = ".rootfs.lock"


@contextmanager
def rootfs_lock(container_dir: str, container_id: str, wait: bool) -> Iterator[None]:
    fd = os.open(os.path.join(container_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise Conflict(f"container {container_id} is busy: files are being copied into it; try again") from None
        yield
    finally:
        os.close(fd)  # releases the lock
