"""Network namespaces made by the monitor and pinned by a bind mount at <run_root>/netns/<container id>.

The pin lets the namespace outlive any process (the runtime joins it by path, `network connect` finds it
later), and lets the next monitor remove it after a crash: unmounting the pin frees the namespace, and the
kernel then destroys the veth ends inside it.

Only the calling thread changes namespace (CLONE_NEWNET is per thread), and it always returns to the host's
before `inside` ends, so the monitor's other sockets stay where they were.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from dockyard import linux

CLONE_NEWNET = 0x40000000


def _check(result: int, what: str) -> None:
    if result < 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class Namespaces:
    """Where pins live, and the host namespace to come back to."""

    def __init__(self, directory: str) -> None:
        self.dir = directory
        self._host_fd: int | None = None

    def host_fd(self) -> int:
        if self._host_fd is None:
            self._host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        return self._host_fd

    def path(self, container_id: str) -> str:
        return os.path.join(self.dir, container_id)

    @contextmanager
    def create(self, container_id: str) -> Iterator[int]:
        """Make a new namespace pinned at path(container_id); inside the block the thread is in it.

        Yields the namespace's fd (valid for the block only): sockets created in the block belong to it.
        """
        libc = linux.libc()
        host = self.host_fd()
        pin = self.path(container_id)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        linux.umount_if_mounted(pin)  # a stale pin would otherwise be stacked under the new one
        os.close(os.open(pin, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
        _check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        fd = -1
        try:
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            linux.mount(f"/proc/self/fd/{fd}", pin, None, linux.MS_BIND)
            yield fd
        except BaseException:
            _check(libc.setns(host, CLONE_NEWNET), "setns(host network)")
            if fd >= 0:
                os.close(fd)
            self.remove(container_id)
            raise
        _check(libc.setns(host, CLONE_NEWNET), "setns(host network)")
        os.close(fd)

    @contextmanager
    def inside(self, container_id: str) -> Iterator[int]:
        """Enter an existing pinned namespace for the block (to open sockets in it)."""
        libc = linux.libc()
        host = self.host_fd()
        fd = os.open(self.path(container_id), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(libc.setns(fd, CLONE_NEWNET), f"setns({self.path(container_id)})")
            try:
                yield fd
            finally:
                _check(libc.setns(host, CLONE_NEWNET), "setns(host network)")
        finally:
            os.close(fd)

    def exists(self, container_id: str) -> bool:
        return os.path.exists(self.path(container_id))

    def remove(self, container_id: str) -> None:
        pin = self.path(container_id)
        linux.umount_if_mounted(pin)
        try:
            os.unlink(pin)
        except FileNotFoundError:
            pass

    def pinned(self) -> list[str]:
        """Container ids with a pin (to sweep what a dead monitor left)."""
        try:
            return sorted(os.listdir(self.dir))
        except OSError as e:
            if e.errno == errno.ENOENT:
                return []
            raise
