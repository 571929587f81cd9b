"""/dev inside the container: device nodes, the standard symlinks, and the console pty.

Nodes are created with mknodat under the container's /dev (resolved inside the rootfs) and then get their
mode set explicitly, since mknod is subject to the umask. /dev/ptmx points at the container's own devpts
instance (mounted with newinstance), so ptys are private to the container.
"""

from __future__ import annotations

import fcntl
import os
import posixpath
import stat
import termios
from typing import Any

from dockyard.runtime import paths
from dockyard.runtime import syscalls as sc

# The nodes every container gets, whatever the spec lists (runc does the same).
DEFAULT_DEVICES: tuple[dict[str, Any], ...] = (
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0},
)

SYMLINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
            ("/proc/self/fd/2", "stderr"))

# <asm-generic/ioctls.h> (x86_64 and aarch64 alike); Python's termios module lacks these two.
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431

_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def create_nodes(rootfd: int, devices: list[dict[str, Any]] | None) -> None:
    wanted = {d["path"]: d for d in DEFAULT_DEVICES}
    for d in devices or ():
        wanted[d["path"]] = d
    for dev in wanted.values():
        _mknod(rootfd, dev)


def _mknod(rootfd: int, dev: dict[str, Any]) -> None:
    path = paths.clean(dev["path"])
    if not path.startswith("dev/"):
        raise OSError(1, f"device {dev['path']} is outside /dev")
    kind = _TYPES.get(dev.get("type", ""))
    if kind is None:
        raise OSError(22, f"device {dev['path']}: bad type {dev.get('type')!r}")
    parent = paths.mkdir_all(rootfd, posixpath.dirname(path))
    name = posixpath.basename(path)
    mode = dev.get("fileMode")
    mode = 0o666 if mode is None else mode & 0o7777
    try:
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        os.mknod(name, kind | mode, os.makedev(dev.get("major", 0), dev.get("minor", 0)), dir_fd=parent)
        os.chmod(name, mode, dir_fd=parent, follow_symlinks=True)
        uid, gid = dev.get("uid"), dev.get("gid")
        if uid is not None or gid is not None:
            os.chown(name, uid if uid is not None else -1, gid if gid is not None else -1, dir_fd=parent,
                     follow_symlinks=False)
    finally:
        os.close(parent)


def create_symlinks(rootfd: int) -> None:
    dev = paths.open_in_root(rootfd, "/dev", os.O_PATH | os.O_DIRECTORY)
    try:
        links = list(SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "core"))
        for target, name in links:
            try:
                os.symlink(target, name, dir_fd=dev)
            except FileExistsError:
                pass
        # ptmx must be the container's devpts instance, never a host node.
        try:
            os.unlink("ptmx", dir_fd=dev)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev)
    finally:
        os.close(dev)


def open_console(size: dict[str, int] | None = None) -> tuple[int, str]:
    """Open a new pty pair in the container's devpts (call after pivot_root). Returns (master fd, slave path).

    size: the spec's process.consoleSize ({"height": rows, "width": columns}), set before anyone reads it.
    """
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    if size:
        rows, cols = int(size.get("height", 0)), int(size.get("width", 0))
        winsize = rows.to_bytes(2, "little") + cols.to_bytes(2, "little") + bytes(4)
        fcntl.ioctl(master, termios.TIOCSWINSZ, winsize)
    fcntl.ioctl(master, TIOCSPTLCK, b"\0\0\0\0")  # unlockpt
    number = int.from_bytes(fcntl.ioctl(master, TIOCGPTN, b"\0\0\0\0"), "little")
    return master, f"/dev/pts/{number}"


def bind_console(slave_path: str) -> None:
    """/dev/console is the container's pty, as runc makes it."""
    fd = os.open("/dev/console", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)
    sc.mount(slave_path, "/dev/console", "bind", sc.MS_BIND)


def send_fd(console_fd: int, fd: int) -> None:
    """Hand the pty master over the (already connected) console socket: SCM_RIGHTS, runc's protocol.

    `socket` was imported by the parent before the fork: after pivot_root no module can be imported.
    """
    import socket

    with socket.socket(fileno=os.dup(console_fd)) as s:
        socket.send_fds(s, [b"/dev/ptmx"], [fd])


def become_terminal_owner(slave_path: str) -> None:
    """Make the pty the controlling terminal and the stdio of this (session-leading) process."""
    os.setsid()
    fd = os.open(slave_path, os.O_RDWR)
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target)
    if fd > 2:
        os.close(fd)
