"""Files in and out of containers: the archive operations behind `cp` (Docker's HEAD/GET/PUT .../archive)
and `export`.

Paths follow Docker's rules: a container path is absolute from the container's `/`; its directory part is
resolved with every symlink followed inside the container, its last component is not followed unless asked
(`cp -L`); a trailing `/` or `/.` is kept, since `dir/.` means "the content of dir". All resolution is done by
the kernel below a root fd (engine/container_root.py), and each object is used through the fd it was
resolved to, never looked up again by name.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.engine.container_store import ContainerRecord
from dockyard.errors import InvalidArgument, NotFound
from dockyard.runtime import paths

MAX_SYMLINKS = 40

# Go's os.FileMode bits, which Docker puts in the path stat of the archive endpoints.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_DEVICE = 1 << 26
GO_MODE_NAMED_PIPE = 1 << 25
GO_MODE_SOCKET = 1 << 24
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_CHAR_DEVICE = 1 << 21
GO_MODE_STICKY = 1 << 20


def go_file_mode(st_mode: int) -> int:
    mode = st_mode & 0o777
    kind = stat.S_IFMT(st_mode)
    mode |= {stat.S_IFDIR: GO_MODE_DIR, stat.S_IFLNK: GO_MODE_SYMLINK, stat.S_IFBLK: GO_MODE_DEVICE,
             stat.S_IFCHR: GO_MODE_DEVICE | GO_MODE_CHAR_DEVICE, stat.S_IFIFO: GO_MODE_NAMED_PIPE,
             stat.S_IFSOCK: GO_MODE_SOCKET}.get(kind, 0)
    if st_mode & stat.S_ISUID:
        mode |= GO_MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= GO_MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= GO_MODE_STICKY
    return mode


@dataclass
class PathStat:
    """Docker's ContainerPathStat (the X-Docker-Container-Path-Stat header)."""

    name: str
    size: int
    mode: int  # Go os.FileMode
    mtime: str
    link_target: str = ""

    @property
    def is_dir(self) -> bool:
        return bool(self.mode & GO_MODE_DIR)

    @property
    def is_symlink(self) -> bool:
        return bool(self.mode & GO_MODE_SYMLINK)

    @property
    def is_regular(self) -> bool:
        return not self.mode & (GO_MODE_DIR | GO_MODE_SYMLINK | GO_MODE_DEVICE | GO_MODE_NAMED_PIPE |
                                GO_MODE_SOCKET)

    def to_json(self) -> dict:
        return {"name": self.name, "size": self.size, "mode": self.mode, "mtime": self.mtime,
                "linkTarget": self.link_target}


def absolute(path: str) -> str:
    """The container path as an absolute, cleaned path that keeps a trailing '/' or '/.' (they mean things)."""
    cleaned = posixpath.normpath("/" + path)
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    if (path.endswith("/.") or path == ".") and cleaned != "/":
        return cleaned + "/."
    if path.endswith("/") and cleaned != "/":
        return cleaned + "/"
    return cleaned


def archive_name(abs_path: str) -> str:
    """The name the archived object gets (Go's filepath.Base): '.' for 'dir/.' and for '/' itself."""
    if abs_path.endswith("/."):
        return "."
    return posixpath.basename(abs_path.rstrip("/")) or "."


def _not_found(record: ContainerRecord, path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {record.name}")


def _open_object(root: int, record: ContainerRecord, path: str, follow: bool) -> int:
    """An O_PATH fd on the object at `path` in the container (the last component followed only if `follow`)."""
    abs_path = absolute(path)
    directory, base = abs_path.rsplit("/", 1)
    try:
        if follow and base not in ("", "."):
            return paths.open_in_root(root, abs_path, os.O_PATH)
        dir_fd = paths.open_in_root(root, directory or "/", os.O_PATH | os.O_DIRECTORY)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise _not_found(record, path) from None
        raise
    if base in ("", "."):
        return dir_fd
    try:
        return os.open(base, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        raise _not_found(record, path) from None
    finally:
        os.close(dir_fd)


def _link_target(root: int, abs_path: str) -> str:
    """Where a symlink leads, as an absolute container path (each link's text joined onto its directory)."""
    current = abs_path.rstrip("/")
    for _ in range(MAX_SYMLINKS):
        directory = posixpath.dirname(current)
        try:
            dir_fd = paths.open_in_root(root, directory, os.O_PATH | os.O_DIRECTORY)
        except OSError:
            return current
        try:
            st = os.stat(posixpath.basename(current), dir_fd=dir_fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                return current
            text = os.readlink(posixpath.basename(current), dir_fd=dir_fd)
        except OSError:
            return current
        finally:
            os.close(dir_fd)
        current = posixpath.normpath(posixpath.join(directory, text))
    return current


def _stat_of(fd: int, name: str) -> PathStat:
    from dockyard.timeutil import rfc3339

    st = os.fstat(fd)
    return PathStat(name, st.st_size, go_file_mode(st.st_mode), rfc3339(st.st_mtime))


def _check_trailing_slash(record: ContainerRecord, path: str, st: PathStat) -> None:
    if path.endswith(("/", "/.")) and not st.is_dir:
        raise InvalidArgument(f"Could not find the file {path} in container {record.name}: not a directory")


# --- the archive operations -----------------------------------------------------------------------------------

def stat_path(engine, record: ContainerRecord, path: str, follow: bool = False) -> PathStat:
    """HEAD .../archive: what is at `path` (a symlink itself, with where it leads, unless `follow`)."""
    from dockyard.engine.container_root import container_root

    abs_path = absolute(path)
    with container_root(engine, record) as root:
        fd = _open_object(root, record, path, follow)
        try:
            result = _stat_of(fd, archive_name(abs_path))
        finally:
            os.close(fd)
        if result.is_symlink:
            result.link_target = _link_target(root, abs_path)
    _check_trailing_slash(record, path, result)
    return result


def get_archive(engine, record: ContainerRecord, path: str, out: BinaryIO, follow: bool = False) -> PathStat:
    """GET .../archive: a tar of `path` whose top entry is named after it; `follow` archives a symlink's target."""
    from dockyard.engine.container_root import container_root
    from dockyard.engine.fs_tar import TreeArchiver

    abs_path = absolute(path)
    name = archive_name(abs_path)
    with container_root(engine, record) as root:
        fd = _open_object(root, record, path, follow)
        try:
            result = _stat_of(fd, name)
            _check_trailing_slash(record, path, result)
            with TreeArchiver(out) as archiver:
                archiver.add_tree(fd, name)
        finally:
            os.close(fd)
    return result


def put_archive(engine, record: ContainerRecord, path: str, stream: BinaryIO, copy_uid_gid: bool = False,
                no_overwrite_dir_non_dir: bool = True) -> int:
    """PUT .../archive: extract a tar into the directory at `path` (followed if a symlink); returns bytes written.

    Without `copy_uid_gid` everything belongs to root, as `docker cp` documents; with it, to the owners the
    tar names. The tar is confined to the destination directory: nothing in it can reach above it.
    """
    from dockyard.engine.container_root import container_root
    from dockyard.engine.fs_untar import ExtractOptions, extract

    with container_root(engine, record, writable=True) as root:
        try:
            dest = paths.open_in_root(root, absolute(path), os.O_PATH)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                raise _not_found(record, path) from None
            raise
        try:
            if not stat.S_ISDIR(os.fstat(dest).st_mode):
                raise InvalidArgument("extraction point is not a directory")
            options = ExtractOptions(owner=None if copy_uid_gid else (0, 0),
                                     no_overwrite_dir_non_dir=no_overwrite_dir_non_dir)
            try:
                return extract(stream, dest, "", options).data_bytes
            except OSError as e:
                if e.errno == errno.EROFS:
                    raise InvalidArgument("container rootfs is marked read-only") from None
                raise
        finally:
            os.close(dest)


def export(engine, record: ContainerRecord, out: BinaryIO) -> None:
    """The container's whole file system (image and writable layer, without volumes) as a tar on `out`."""
    from dockyard.engine.container_root import merged_root
    from dockyard.engine.fs_tar import TreeArchiver

    with merged_root(engine, record) as root, TreeArchiver(out) as archiver:
        archiver.add_tree(root, "")
