"""Detached mounts: a file system reachable only through a file descriptor, gone when the last fd closes.

The kernel's new mount API (fsopen/fsconfig/fsmount, open_tree, move_mount; Linux >= 5.2) builds a mount
that is attached nowhere in any mount namespace. `cp` and `export` on a stopped container use one to see its
merged root: nothing appears in /proc/self/mountinfo, and however the command ends (even SIGKILL) the mount
dies with its fds, so no mount is ever left behind and nothing needs unmounting.
"""

from __future__ import annotations

import ctypes
import errno
import os

from dockyard.errors import HostError
from dockyard.linux import libc

# The same numbers on every architecture: these calls came after the syscall tables were unified.
_NR_OPEN_TREE, _NR_MOVE_MOUNT, _NR_FSOPEN, _NR_FSCONFIG, _NR_FSMOUNT, _NR_MOUNT_SETATTR = 428, 429, 430, 431, 432, 442

FSOPEN_CLOEXEC = 0x1
FSCONFIG_SET_STRING = 1
FSCONFIG_CMD_CREATE = 6
FSMOUNT_CLOEXEC = 0x1
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
OPEN_TREE_CLONE = 0x1
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOVE_MOUNT_T_EMPTY_PATH = 0x40


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64), ("propagation", ctypes.c_uint64),
                ("userns_fd", ctypes.c_uint64)]


def _syscall(number: int, what: str, *args: object) -> int:
    result = libc().syscall(ctypes.c_long(number), *args)
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def _kernel_messages(fs_fd: int) -> str:
    """What the file system said about a failed fsconfig (the fs context's log, read from its fd)."""
    lines = []
    os.set_blocking(fs_fd, False)
    while True:
        try:
            data = os.read(fs_fd, 4096)
        except OSError:
            break
        if not data:
            break
        lines.append(data.decode(errors="replace").strip())
    return "; ".join(lines)


def mount_fs(fstype: str, options: list[tuple[str, str]], read_only: bool = False) -> int:
    """A new detached mount of `fstype` configured with (key, value) options; returns its (O_PATH) root fd."""
    fs_fd = _syscall(_NR_FSOPEN, f"fsopen {fstype}", fstype.encode(), ctypes.c_uint(FSOPEN_CLOEXEC))
    try:
        try:
            for key, value in options:
                _syscall(_NR_FSCONFIG, f"fsconfig {key}", ctypes.c_int(fs_fd), ctypes.c_uint(FSCONFIG_SET_STRING),
                         key.encode(), value.encode(), ctypes.c_int(0))
            _syscall(_NR_FSCONFIG, "fsconfig create", ctypes.c_int(fs_fd), ctypes.c_uint(FSCONFIG_CMD_CREATE),
                     None, None, ctypes.c_int(0))
        except OSError as e:
            detail = _kernel_messages(fs_fd)
            raise HostError(f"cannot mount {fstype}: {e.strerror}" + (f" ({detail})" if detail else "")) from None
        attrs = MOUNT_ATTR_RDONLY if read_only else 0
        return _syscall(_NR_FSMOUNT, "fsmount", ctypes.c_int(fs_fd), ctypes.c_uint(FSMOUNT_CLOEXEC),
                        ctypes.c_uint(attrs))
    finally:
        os.close(fs_fd)


def clone_tree(path: str, read_only: bool = False) -> int:
    """A detached copy of the mount tree at `path` (a bind mount not yet attached anywhere)."""
    fd = _syscall(_NR_OPEN_TREE, f"open_tree {path}", ctypes.c_int(-100), path.encode(),
                  ctypes.c_uint(OPEN_TREE_CLONE | AT_RECURSIVE | os.O_CLOEXEC))
    if read_only:
        try:
            set_read_only(fd)
        except BaseException:
            os.close(fd)
            raise
    return fd


def set_read_only(mount_fd: int) -> None:
    attr = _MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
    _syscall(_NR_MOUNT_SETATTR, "mount_setattr", ctypes.c_int(mount_fd), b"",
             ctypes.c_uint(AT_EMPTY_PATH | AT_RECURSIVE), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)))


def attach(tree_fd: int, target_fd: int) -> None:
    """Mount the detached tree `tree_fd` on the directory (or file) `target_fd`, which may itself be detached.

    Attaching beneath a detached mount needs Linux >= 6.15; older kernels answer EINVAL.
    """
    _syscall(_NR_MOVE_MOUNT, "move_mount", ctypes.c_int(tree_fd), b"", ctypes.c_int(target_fd), b"",
             ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH))


def supported() -> bool:
    """Whether this kernel has the new mount API (fsopen answers ENOSYS when it does not)."""
    try:
        os.close(_syscall(_NR_FSOPEN, "fsopen", b"tmpfs", ctypes.c_uint(FSOPEN_CLOEXEC)))
        return True
    except OSError as e:
        return e.errno != errno.ENOSYS
