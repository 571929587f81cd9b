"""File-tree helpers that never follow a symlink and never recurse on the Python stack.

Image content is untrusted: a tree may be 1000 levels deep, and any directory may have been swapped for a
symlink. Everything here works on directory file descriptors opened with O_NOFOLLOW, one level at a time,
with an explicit stack.
"""

from __future__ import annotations

import errno
import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def open_dir(name: str, dir_fd: int | None = None) -> int:
    return os.open(name, DIR_FLAGS, dir_fd=dir_fd)


def remove_entry(name: str, dir_fd: int) -> None:
    """Remove `name` inside `dir_fd`, whatever it is; a directory goes with all it contains."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        empty_dir(name, dir_fd)
        os.rmdir(name, dir_fd=dir_fd)
    else:
        os.unlink(name, dir_fd=dir_fd)


def empty_dir(name: str, dir_fd: int | None = None, keep: "set[str] | None" = None) -> None:
    """Delete everything inside directory `name` (relative to dir_fd), iteratively.

    `keep` names direct children that stay.
    """
    top = open_dir(name, dir_fd)
    # Each frame: (fd of a directory, names still to remove in it, its name in its parent; None for the top).
    stack: list[tuple[int, list[str], str | None]] = [(top, os.listdir(top), None)]
    try:
        while stack:
            fd, names, dirname = stack[-1]
            if not names:
                stack.pop()
                os.close(fd)
                if dirname is not None:  # a child frame: its parent is the new top of the stack
                    os.rmdir(dirname, dir_fd=stack[-1][0])
                continue
            child = names.pop()
            if keep is not None and len(stack) == 1 and child in keep:
                continue
            try:
                st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                child_fd = open_dir(child, fd)
                stack.append((child_fd, os.listdir(child_fd), child))
            else:
                os.unlink(child, dir_fd=fd)
    except BaseException:
        for frame in stack:
            os.close(frame[0])
        raise


def remove_tree(path: str) -> None:
    """rm -rf without following symlinks or recursing; a missing path is fine."""
    path = os.path.normpath(path)
    parent, name = os.path.split(path)
    try:
        parent_fd = os.open(parent or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        remove_entry(name, parent_fd)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise
    finally:
        os.close(parent_fd)


def tree_size(path: str) -> int:
    """Bytes used by regular files under path (hardlinked inodes counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o644) -> None:
    """Write a small file so that readers see either the old or the new content, never a mix."""
    tmp = f"{path}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)


class WrittenIntoPlace:
    """`with WrittenIntoPlace(path) as f:` writes a temporary file beside `path`, renamed onto it when the
    block ends well and removed when it does not: a failed write never leaves a half-written `path`."""

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.tmp = f"{self.path}.dockyard-tmp-{os.getpid()}"

    def __enter__(self):  # type: ignore[no-untyped-def]
        self.file = open(self.tmp, "wb")  # noqa: SIM115 - closed in __exit__
        return self.file

    def __exit__(self, kind, value, traceback) -> None:  # type: ignore[no-untyped-def]
        try:
            self.file.close()
            if kind is None:
                os.rename(self.tmp, self.path)
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
