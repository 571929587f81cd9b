"""Unpacking a build context sent as a tar stream (plain, gzip, bzip2, xz or zstd) into a private directory.

A context tar comes from the user, possibly from a remote client, so extraction is strict: absolute names
and `..` are refused, every directory on an entry's path is opened with O_NOFOLLOW (an entry can never be
written through a symlink, even one an earlier entry created), hard links must point at a regular file
already extracted, and data is streamed with bounded memory. Devices and FIFOs are skipped: a context only
needs files, directories and links.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from typing import BinaryIO

from dockyard.build.errors import BuildContextError
from dockyard.fsutil import remove_entry

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CHUNK = 1 << 20
MAX_ID = 2**32 - 2
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSED_MAGICS = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", ZSTD_MAGIC)


def looks_like_archive(head: bytes) -> bool:
    """True for a compressed stream or a tar header (Docker's test for `docker build - < x`)."""
    if head.startswith(COMPRESSED_MAGICS):
        return True
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return head[:512] == bytes(512)  # an empty archive starts with a zero block
    return True


class _Prefixed:
    """A read-only stream: `head` (already read from `rest`), then the remainder of `rest`."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if not self.head:
            return self.rest.read(size)
        if size < 0:
            data, self.head = self.head + self.rest.read(), b""
            return data
        if size <= len(self.head):
            data, self.head = self.head[:size], self.head[size:]
            return data
        # Callers may sniff with one read (tarfile does): fill the request as far as the stream allows.
        data, self.head = self.head, b""
        return data + self.rest.read(size - len(data))


def _decompressed(stream: BinaryIO) -> BinaryIO:
    head = stream.read(4)
    joined = _Prefixed(head, stream)
    if head.startswith(ZSTD_MAGIC):
        import zstandard
        return zstandard.ZstdDecompressor().stream_reader(joined)  # type: ignore[return-value]
    return joined  # type: ignore[return-value]


def extract_tar(stream: BinaryIO, root: str) -> int:
    """Unpack `stream` into the existing empty directory `root`; returns the number of entries."""
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    same_owner = os.geteuid() == 0
    dirs: list[tuple[list[str], tarfile.TarInfo]] = []
    count = 0
    try:
        try:
            # Closed by the `with tar` below.
            tar = tarfile.open(fileobj=_decompressed(stream), mode="r|*")  # type: ignore[call-overload]  # noqa: SIM115
        except tarfile.TarError as e:
            raise BuildContextError(f"the build context is not a readable tar archive: {e}") from None
        with tar:
            try:
                for member in tar:
                    count += 1
                    parts = _clean_name(member.name)
                    if not parts:
                        continue
                    _extract_one(tar, member, parts, root_fd, same_owner)
                    if member.isdir():
                        dirs.append((parts, member))
            except (tarfile.TarError, EOFError, OSError) as e:
                raise BuildContextError(f"cannot unpack the build context: {e}") from None
        # Directory modes and times last, deepest first, so that writing their contents was never blocked.
        for parts, member in sorted(dirs, key=lambda d: len(d[0]), reverse=True):
            fd = _open_path(root_fd, parts, create=False)
            try:
                _set_metadata(fd, member, same_owner)
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
    return count


def _clean_name(name: str) -> list[str]:
    if "\x00" in name:
        raise BuildContextError(f"context archive entry {name!r} contains a NUL byte")
    if name.startswith("/"):
        raise BuildContextError(f"context archive entry {name!r} has an absolute path")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise BuildContextError(f"context archive entry {name!r} points outside the context")
        parts.append(part)
    return parts


def _open_path(root_fd: int, parts: list[str], *, create: bool) -> int:
    """The directory `parts` below root, never through a symlink; missing ones are made when `create`."""
    fd = os.dup(root_fd)
    try:
        for part in parts:
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise BuildContextError(f"context archive entry under {'/'.join(parts)!r} goes through a "
                                            "symlink or a file") from None
                raise
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _check_ids(member: tarfile.TarInfo) -> None:
    for value in (member.uid, member.gid):
        if not 0 <= value <= MAX_ID:
            raise BuildContextError(f"context archive entry {member.name!r} has an invalid owner id {value}")


def _extract_one(tar: tarfile.TarFile, member: tarfile.TarInfo, parts: list[str], root_fd: int,
                 same_owner: bool) -> None:
    _check_ids(member)
    parent = _open_path(root_fd, parts[:-1], create=True)
    name = parts[-1]
    try:
        existing = _lstat(name, parent)
        if member.isdir():
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                remove_entry(name, parent)
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent)
            return
        if existing is not None:
            remove_entry(name, parent)
        if member.isreg():
            _write_file(tar, member, name, parent, same_owner)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)
            if same_owner:
                os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        elif member.islnk():
            _hard_link(member, name, parent, root_fd)
        # Devices, FIFOs and other specials have no place in a build context: skipped.
    finally:
        os.close(parent)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _write_file(tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, parent: int,
                same_owner: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o600, dir_fd=parent)
    try:
        source = tar.extractfile(member)
        if source is not None:
            while chunk := source.read(CHUNK):
                _write_all(fd, chunk)
        _set_metadata(fd, member, same_owner)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _set_metadata(fd: int, member: tarfile.TarInfo, same_owner: bool) -> None:
    if same_owner:
        os.fchown(fd, member.uid, member.gid)
    os.fchmod(fd, member.mode & 0o7777)
    mtime_ns = int(member.mtime * 1_000_000_000)
    os.utime(fd, ns=(mtime_ns, mtime_ns))


def _hard_link(member: tarfile.TarInfo, name: str, parent: int, root_fd: int) -> None:
    target = _clean_name(member.linkname)
    if not target:
        raise BuildContextError(f"context archive hard link {member.name!r} has an empty target")
    target_dir = _open_path(root_fd, target[:-1], create=False)
    try:
        st = _lstat(target[-1], target_dir)
        if st is None or not stat.S_ISREG(st.st_mode):
            raise BuildContextError(f"context archive hard link {member.name!r} -> {member.linkname!r}: the "
                                    "target is not a file extracted before it")
        os.link(target[-1], name, src_dir_fd=target_dir, dst_dir_fd=parent, follow_symlinks=False)
    finally:
        os.close(target_dir)
