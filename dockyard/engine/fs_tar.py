"""Tar streams of file trees reached through file descriptors: `cp` out of a container, `export`, `commit`.

A running container can change its files while we read them (swap a directory for a symlink to /etc, say:
the lesson of CVE-2018-15664). So nothing here resolves a path string: each object is opened with
O_PATH|O_NOFOLLOW relative to its parent directory's fd, its type comes from fstat on that very fd, a
regular file's data is read by reopening that fd (never its name), and directories are walked one level at a
time with an explicit stack. A symlink is archived as a symlink and never followed.

Files that grow or shrink while being read are cut or zero-padded to the size their header announced, so the
stream always stays a valid tar.
"""

from __future__ import annotations

import os
import resource
import stat
import tarfile
from collections.abc import Callable
from typing import BinaryIO

from dockyard.image.layer_apply import OPAQUE_WHITEOUT, WHITEOUT_PREFIX

COPY_BUFFER = 1 << 20
PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
READ_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def raise_fd_limit() -> None:
    """A deep tree holds one fd per level: allow as many as the hard limit does (Go programs do the same)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _Exact:
    """Reads exactly `size` bytes of fd: a file that shrank is padded with zeros, one that grew is cut."""

    def __init__(self, fd: int, size: int) -> None:
        self.fd, self.remaining = fd, size

    def read(self, n: int = -1) -> bytes:
        n = self.remaining if n < 0 else min(n, self.remaining)
        if n <= 0:
            return b""
        data = os.read(self.fd, n)
        if not data:
            data = bytes(n)
        self.remaining -= len(data)
        return data


def _xattrs(fd: int) -> dict[str, str]:
    """PAX headers for the xattrs of a readable fd, without the overlayfs bookkeeping."""
    try:
        names = os.listxattr(fd)
    except OSError:
        return {}
    headers = {}
    for name in sorted(names):
        if name.startswith("trusted.overlay."):
            continue
        try:
            value = os.getxattr(fd, name)
        except OSError:
            continue
        headers["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return headers


class TreeArchiver:
    """Writes objects, trees and whiteouts to an uncompressed PAX tar stream on `out`."""

    def __init__(self, out: BinaryIO) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=COPY_BUFFER)  # noqa: SIM115
        self.links: dict[tuple[int, int], str] = {}  # (dev, inode) -> name of its first entry: hard links
        self.data_bytes = 0

    def close(self) -> None:
        self.tar.close()

    def __enter__(self) -> TreeArchiver:  # noqa: PYI034
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()

    # --- single entries ---------------------------------------------------------------------------------------

    def add(self, fd: int, arcname: str, mtime_clamp: int | None = None) -> os.stat_result | None:
        """Archive the object an O_PATH|O_NOFOLLOW fd refers to (not its content, for a directory).

        Returns its stat, or None when it is not archivable (a socket, or gone meanwhile).
        """
        st = os.fstat(fd)
        mode = st.st_mode
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = int(st.st_mtime) if mtime_clamp is None else min(int(st.st_mtime), mtime_clamp)
        if stat.S_ISREG(mode):
            self._add_file(fd, info, st)
            return st
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            readable = os.open(".", READ_DIR_FLAGS, dir_fd=fd)
            try:
                info.pax_headers = _xattrs(readable)
            finally:
                os.close(readable)
        elif stat.S_ISLNK(mode):
            info.type = tarfile.SYMTYPE
            try:
                info.linkname = os.readlink("", dir_fd=fd)  # readlinkat on the fd itself: no name to race on
            except OSError:
                return None
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return None  # sockets are runtime objects: Docker leaves them out too
        self.tar.addfile(info)
        return st

    def _add_file(self, fd: int, info: tarfile.TarInfo, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first, 0
                self.tar.addfile(info)
                return
            self.links[key] = info.name
        # Reopen the very inode the O_PATH fd holds: its name may point elsewhere by now.
        data = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY)
        try:
            info.type, info.size = tarfile.REGTYPE, st.st_size
            info.pax_headers = _xattrs(data)
            self.tar.addfile(info, _Exact(data, st.st_size))  # type: ignore[arg-type]
            self.data_bytes += st.st_size
        finally:
            os.close(data)

    def whiteout(self, path: str, mtime: int = 0) -> None:
        """A deletion, in the layer tar form (`dir/.wh.name`)."""
        parent, _, name = path.rpartition("/")
        self._marker(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name, mtime)

    def opaque(self, directory: str, mtime: int = 0) -> None:
        """`dir/.wh..wh..opq`: the directory hides everything the layers below have in it."""
        self._marker(f"{directory}/{OPAQUE_WHITEOUT}", mtime)

    def _marker(self, name: str, mtime: int) -> None:
        info = tarfile.TarInfo(name)
        info.mtime, info.mode = mtime, 0o644
        info.uname = info.gname = ""
        self.tar.addfile(info)

    # --- trees --------------------------------------------------------------------------------------------------

    def add_tree(self, fd: int, arcname: str, skip: Callable[[str], bool] | None = None) -> None:
        """Archive the object at fd and, for a directory, everything under it (names sorted, parents first).

        `arcname` '' archives the contents of a directory without an entry for the directory itself;
        `skip(relative path)` leaves an entry (and what is under it) out.
        """
        raise_fd_limit()
        if arcname:
            st = self.add(fd, arcname)
            if st is None or not stat.S_ISDIR(st.st_mode):
                return
        elif not stat.S_ISDIR(os.fstat(fd).st_mode):
            return
        prefix = arcname + "/" if arcname else ""
        top = os.open(".", READ_DIR_FLAGS, dir_fd=fd)
        # Each frame: (readable fd of a directory, its children's names still to do (reversed), their prefix).
        stack: list[tuple[int, list[str], str]] = [(top, sorted(os.listdir(top), reverse=True), prefix)]
        try:
            while stack:
                dir_fd, names, base = stack[-1]
                if not names:
                    os.close(dir_fd)
                    stack.pop()
                    continue
                name = names.pop()
                child_name = base + name
                if skip is not None and skip(child_name[len(prefix):]):
                    continue
                try:
                    child = os.open(name, PATH_FLAGS, dir_fd=dir_fd)
                except FileNotFoundError:
                    continue  # removed while we walked
                try:
                    st = self.add(child, child_name)
                    if st is not None and stat.S_ISDIR(st.st_mode):
                        sub = os.open(".", READ_DIR_FLAGS, dir_fd=child)
                        stack.append((sub, sorted(os.listdir(sub), reverse=True), child_name + "/"))
                finally:
                    os.close(child)
        except BaseException:
            for frame in stack:
                os.close(frame[0])
            raise
