"""Paths inside a container's rootfs, resolved by the kernel so they can never escape it.

Every mount target and device node is reached through openat2(RESOLVE_IN_ROOT) from a directory fd on the
rootfs: a symlink planted in the image (`/proc -> /host/proc`, `/a -> ../../etc`) resolves as if the rootfs
were `/` (the lesson of CVE-2021-30465). Mounts then target `/proc/self/fd/N` of the resolved fd, so nothing
is re-resolved between the check and the use.
"""

from __future__ import annotations

import errno
import os
import posixpath

from dockyard.errors import InvalidArgument
from dockyard.runtime import syscalls

_RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS


def clean(path: str) -> str:
    """Lexically cleaned, relative form of a container path ('' for the root itself)."""
    p = posixpath.normpath("/" + path)
    return p.lstrip("/")


def open_in_root(rootfd: int, path: str, flags: int = os.O_PATH, mode: int = 0) -> int:
    rel = clean(path) or "."
    return syscalls.openat2(rootfd, rel, flags | os.O_CLOEXEC, mode, _RESOLVE)


def mkdir_all(rootfd: int, path: str, mode: int = 0o755) -> int:
    """mkdir -p inside the root; returns an O_PATH fd on the directory (caller closes).

    A dangling symlink on the way is followed the way the kernel would inside the root (its target is
    created under the rootfs), as runc does; never more than 40 links, like the kernel's ELOOP limit.
    """
    for _ in range(40):
        result = _mkdir_walk(rootfd, clean(path), mode)
        if isinstance(result, int):
            return result
        path = result  # a dangling symlink redirected us: walk the rewritten path from the root
    raise OSError(errno.ELOOP, f"too many levels of symbolic links creating {path} in rootfs")


def _mkdir_walk(rootfd: int, rel: str, mode: int) -> int | str:
    parts = [p for p in rel.split("/") if p]
    fd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=rootfd)
    for i, name in enumerate(parts):
        prefix = "/".join(parts[: i + 1])
        try:
            nxt = open_in_root(rootfd, prefix, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            try:
                os.mkdir(name, mode, dir_fd=fd)
            except FileExistsError:
                target = _dangling_target(fd, name)
                if target is not None:
                    os.close(fd)
                    base = "" if target.startswith("/") else "/".join(parts[:i])
                    return posixpath.join("/", base, target, *parts[i + 1:])
            try:
                nxt = open_in_root(rootfd, prefix, os.O_PATH | os.O_DIRECTORY)
            except OSError as e:
                os.close(fd)
                raise OSError(e.errno, f"cannot create directory /{prefix} in rootfs: {e.strerror}") from None
        except OSError as e:
            os.close(fd)
            raise OSError(e.errno, f"/{prefix} in rootfs: {e.strerror}") from None
        os.close(fd)
        fd = nxt
    return fd


def _dangling_target(dirfd: int, name: str) -> str | None:
    try:
        return os.readlink(name, dir_fd=dirfd)
    except OSError:
        return None


def ensure_file(rootfd: int, path: str, mode: int = 0o644) -> int:
    """Create an empty file (and its parents) if missing; returns an O_PATH fd on it."""
    try:
        return open_in_root(rootfd, path)
    except FileNotFoundError:
        pass
    rel = clean(path)
    if not rel:
        raise InvalidArgument("a file mount cannot target /")
    parent = mkdir_all(rootfd, posixpath.dirname(rel))
    try:
        try:
            os.close(os.open(posixpath.basename(rel), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                             | os.O_CLOEXEC, mode, dir_fd=parent))
        except FileExistsError:
            pass
    finally:
        os.close(parent)
    return open_in_root(rootfd, path)


def fd_path(fd: int) -> str:
    """The magic link that names an open fd, usable as a mount source or target."""
    return f"/proc/self/fd/{fd}"


def exists_in_root(rootfd: int, path: str) -> bool:
    try:
        os.close(open_in_root(rootfd, path))
        return True
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise
