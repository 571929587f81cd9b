"""Extract a tar stream into a directory that may be hostile: `cp` into a container, or out of one to the host.

The rules are layer_apply's, adapted to what `docker cp` means rather than what a layer means:

* the destination is a directory inside a confinement root (the container's `/`, or on the host the directory
  being copied into); every parent directory is resolved by the kernel with openat2(RESOLVE_IN_ROOT), so a
  symlink planted in the container (`/tmp/x -> /etc`) or earlier in the tar resolves inside the root and can
  never reach the host's /etc;
* the last component is never followed: it is created with O_EXCL|O_NOFOLLOW, or mkdir, or symlink, and an
  existing entry is unlinked first, so data is never written through a link into an existing inode;
* owners, modes, xattrs and times are set on an fd of the object just created (or, for a symlink, on the link
  itself), never through a name that could have been swapped;
* names with `..` that climb out of the destination are refused; `.wh.` names are ordinary files here.

Docker's NoOverwriteDirNonDir applies: a directory never replaces a non-directory or the reverse.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard.errors import Conflict, InvalidArgument, UnsafeLayer
from dockyard.fsutil import remove_entry
from dockyard.image.layer_apply import COPY_CHUNK, FORBIDDEN_XATTR_PREFIXES, MAX_ID, _write_all
from dockyard.runtime import paths

DIR_OPEN = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
PATH_OPEN = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class ExtractOptions:
    owner: tuple[int, int] | None = None  # everything owned by this (uid, gid); None: as the tar says
    no_overwrite_dir_non_dir: bool = True
    devices: bool = True  # create device nodes (never on the host: a container must not hand out raw disks)
    rebase: tuple[str, str] | None = None  # rename an entry's first path component: (old, new)


@dataclass
class ExtractResult:
    entries: int = 0
    data_bytes: int = 0
    skipped: list[str] = field(default_factory=list)


def _rebased(name: str, rebase: tuple[str, str] | None) -> str:
    """Docker's RebaseArchiveEntries: the first path component `old` becomes `new`."""
    if rebase is None:
        return name
    first, sep, rest = name.lstrip("/").partition("/")
    return rebase[1] + sep + rest if first == rebase[0] else name


def entry_parts(name: str) -> list[str]:
    """A tar name as components below the destination; '..' may not climb out of it."""
    if "\x00" in name:
        raise UnsafeLayer(f"tar entry {name!r} contains a NUL byte")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeLayer(f"tar entry {name!r} points outside the destination")
            parts.pop()
            continue
        parts.append(part)
    return parts


def _check_ids(member: tarfile.TarInfo) -> None:
    for what, value in (("uid", member.uid), ("gid", member.gid)):
        if not 0 <= value <= MAX_ID:
            raise UnsafeLayer(f"tar entry {member.name!r} has {what} {value}, outside 0..{MAX_ID}")


class _Extractor:
    def __init__(self, root_fd: int, dest: str, options: ExtractOptions) -> None:
        self.root_fd = root_fd
        self.dest = paths.clean(dest)
        self.options = options
        self.result = ExtractResult()
        self.dir_times: list[tuple[str, int]] = []  # set last: creating entries in a directory bumps its mtime
        self._parent: tuple[str, int] | None = None  # the last parent directory resolved: (path, O_PATH fd)

    def close(self) -> None:
        self._drop_parent()

    def _drop_parent(self) -> None:
        if self._parent is not None:
            os.close(self._parent[1])
            self._parent = None

    def _path(self, parts: list[str]) -> str:
        return "/".join([self.dest, *parts]) if self.dest else "/".join(parts)

    def _parent_fd(self, parts: list[str], name: str) -> int:
        """O_PATH fd of the directory that will hold parts[-1], made if missing, resolved inside the root."""
        path = self._path(parts[:-1])
        if self._parent is not None and self._parent[0] == path:
            return self._parent[1]
        self._drop_parent()
        try:
            fd = paths.open_in_root(self.root_fd, path, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            fd = paths.mkdir_all(self.root_fd, path)
        except OSError as e:
            if e.errno in (errno.ENOTDIR, errno.ELOOP):
                raise InvalidArgument(f"cannot extract {name!r}: /{path} is not a directory") from None
            raise
        self._parent = (path, fd)
        return fd

    # --- entries ----------------------------------------------------------------------------------------------

    def run(self, tar: tarfile.TarFile) -> ExtractResult:
        # next() rather than iteration, clearing tar.members: a 100k-entry stream costs no more memory than one.
        while (member := tar.next()) is not None:
            tar.members.clear()
            self.result.entries += 1
            self._member(tar, member)
        self._set_dir_times()
        return self.result

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = _rebased(member.name, self.options.rebase)
        parts = entry_parts(name)
        if not parts:
            return  # the destination itself: Docker leaves its metadata alone
        _check_ids(member)
        if (member.ischr() or member.isblk()) and not self.options.devices:
            self.result.skipped.append(name)
            return
        parent = self._parent_fd(parts, name)
        base = parts[-1]
        if self._make_room(parent, base, member, parts):
            if member.isdir():
                os.mkdir(base, 0o700, dir_fd=parent)
            elif member.isreg():
                self._write_file(tar, member, parent, base)
                return
            elif member.issym():
                os.symlink(member.linkname, base, dir_fd=parent)
                self._set_link_metadata(parent, base, member)
                return
            elif member.islnk():
                self._hardlink(parent, base, member)
                return
            elif member.ischr() or member.isblk():
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(base, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
            elif member.isfifo():
                os.mkfifo(base, 0o600, dir_fd=parent)
            else:
                raise UnsafeLayer(f"tar entry {member.name!r} has unsupported type {member.type!r}")
        if member.isdir():
            fd = os.open(base, DIR_OPEN, dir_fd=parent)
            try:
                self._set_metadata(fd, member, readable=True)
            finally:
                os.close(fd)
            self.dir_times.append((self._path(parts), int(member.mtime)))
            return
        fd = os.open(base, PATH_OPEN, dir_fd=parent)  # a device or fifo: never opened for I/O
        try:
            self._set_metadata(fd, member, readable=False)
        finally:
            os.close(fd)

    def _make_room(self, parent: int, base: str, member: tarfile.TarInfo, parts: list[str]) -> bool:
        """Clear the way for the entry; False when an existing directory is kept (a directory entry over it)."""
        try:
            st = os.stat(base, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return True
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_dir and member.isdir():
            return False
        if self.options.no_overwrite_dir_non_dir:
            where = "/" + self._path(parts)
            if is_dir:
                raise Conflict(f'cannot overwrite directory "{where}" with non-directory "{where}"')
            if member.isdir():
                raise Conflict(f'cannot overwrite non-directory "{where}" with directory "{where}"')
        remove_entry(base, parent)
        return True

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, base: str) -> None:
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            data = tar.extractfile(member)
            assert data is not None
            remaining = member.size
            while remaining:
                chunk = data.read(min(COPY_CHUNK, remaining))
                if not chunk:
                    raise tarfile.ReadError(f"unexpected end of data in {member.name!r}")
                _write_all(fd, chunk)
                remaining -= len(chunk)
            self.result.data_bytes += member.size
            self._set_metadata(fd, member, readable=True)
        finally:
            os.close(fd)

    def _hardlink(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        """A link to an entry already extracted: Docker's rule is that its target lies inside the destination."""
        target_parts = entry_parts(_rebased(member.linkname, self.options.rebase))
        if not target_parts:
            raise UnsafeLayer(f"hard link {member.name!r} points at the destination directory itself")
        target = paths.open_in_root(self.root_fd, self._path(target_parts), os.O_PATH | os.O_NOFOLLOW)
        try:
            if stat.S_ISDIR(os.fstat(target).st_mode):
                raise UnsafeLayer(f"hard link {member.name!r} points at a directory")
            # linkat through the magic link of the fd: the inode we resolved, not a name that could move.
            os.link(f"/proc/self/fd/{target}", base, dst_dir_fd=parent, follow_symlinks=True)
        finally:
            os.close(target)

    # --- metadata ---------------------------------------------------------------------------------------------

    def _owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        return self.options.owner if self.options.owner is not None else (member.uid, member.gid)

    def _set_metadata(self, fd: int, member: tarfile.TarInfo, readable: bool) -> None:
        """Owner, then mode (chown clears setuid bits), xattrs and times, all on the object's own fd."""
        uid, gid = self._owner(member)
        target: int | str = fd if readable else f"/proc/self/fd/{fd}"  # O_PATH fds go through their magic link
        os.chown(target, uid, gid)
        os.chmod(target, member.mode & 0o7777)
        if readable:
            for key, value in member.pax_headers.items():
                if not key.startswith("SCHILY.xattr."):
                    continue
                xattr = key[len("SCHILY.xattr."):]
                if xattr.startswith(FORBIDDEN_XATTR_PREFIXES):
                    continue
                try:
                    os.setxattr(fd, xattr, value.encode("utf-8", "surrogateescape"))
                except OSError as e:
                    if e.errno not in (errno.ENOTSUP, errno.EPERM):
                        raise
        if not member.isdir():
            mtime = int(member.mtime * 1e9)
            os.utime(target, ns=(mtime, mtime))

    def _set_link_metadata(self, parent: int, base: str, member: tarfile.TarInfo) -> None:
        uid, gid = self._owner(member)
        os.chown(base, uid, gid, dir_fd=parent, follow_symlinks=False)
        mtime = int(member.mtime * 1e9)
        os.utime(base, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)

    def _set_dir_times(self) -> None:
        self._drop_parent()
        for path, mtime in reversed(self.dir_times):
            try:
                fd = paths.open_in_root(self.root_fd, path, DIR_OPEN)
            except OSError:
                continue  # replaced or removed later in the stream
            try:
                os.utime(fd, ns=(mtime * 10**9, mtime * 10**9))
            finally:
                os.close(fd)


def extract(stream: BinaryIO, root_fd: int, dest: str, options: ExtractOptions | None = None) -> ExtractResult:
    """Extract a tar (plain, gzip, bzip2 or xz) from `stream` into `dest`, a directory below `root_fd`."""
    extractor = _Extractor(root_fd, dest, options or ExtractOptions())
    try:
        with tarfile.open(fileobj=stream, mode="r|*", bufsize=COPY_CHUNK) as tar:
            return extractor.run(tar)
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid tar stream: {e}") from None
    finally:
        extractor.close()
