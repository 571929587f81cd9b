"""Apply a layer tar onto a snapshot directory, safely.

A dedicated extractor rather than tarfile.extractall: real images need absolute symlinks, device nodes and
setuid bits, and extraction must still never touch anything outside the root, whatever the tar says. So:

* every path is walked one component at a time from a directory fd with O_NOFOLLOW: an entry whose path goes
  through a symlink (planted by this layer or an earlier one) is refused, as are absolute names, `..`
  components and hard links that leave the root;
* modes, owners, times and links are set on fds or with follow_symlinks=False, never through a symlink;
* whiteouts become either overlayfs whiteouts (a 0/0 character device, the `trusted.overlay.opaque` xattr) when
  the target is an overlay upper directory, or deletions when the target is a full copy of the tree;
* memory stays bounded: data is streamed, sparse files keep their holes.

A layer read from a stream goes through _TarStream rather than tarfile's own stream mode, which copies every
byte of file data twice in Python (its _Stream buffer, then a BufferedReader) in chunks of its choosing: here
tarfile only parses the headers, and file contents go from the source's chunks straight to os.write.

On any error the caller throws the target directory away; this module never cleans up half a layer itself.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO

from dockyard.errors import UnsafeLayer
from dockyard.fsutil import DIR_FLAGS, empty_dir, remove_entry
from dockyard.image.overlay import OVERLAY_OPAQUE_XATTR, find_in_layers

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
# AUFS bookkeeping entries that some old images carry; Docker skips them too.
AUFS_META_PREFIX = ".wh..wh."
MAX_ID = 2**32 - 2
COPY_CHUNK = 1 << 20
FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.",)


@dataclass
class ApplyOptions:
    overlay_whiteouts: bool = True  # False: the target holds the whole tree, whiteouts delete
    lowers: list[str] = field(default_factory=list)  # lower layer dirs, top first (overlay mode only)
    same_owner: bool = True  # chown entries as the tar says (needs root)
    whiteouts: bool = True  # False: a plain tree (a build context), where `.wh.` names are ordinary files
    special_files: bool = True  # False: device nodes and FIFOs are skipped (they have no place in a context)


@dataclass
class ApplyResult:
    size: int = 0  # bytes of regular file data written
    entries: int = 0


def _clean_name(name: str, what: str = "entry") -> list[str]:
    """Split a tar name into safe path components; refuse absolute paths and `..`."""
    if "\x00" in name:
        raise UnsafeLayer(f"layer {what} {name!r} contains a NUL byte")
    if name.startswith("/"):
        raise UnsafeLayer(f"layer {what} {name!r} has an absolute path")
    parts = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise UnsafeLayer(f"layer {what} {name!r} has a '..' component that could leave the layer root")
        parts.append(part)
    return parts


def _clean_link_target(linkname: str) -> list[str]:
    """A hard link's target, relative to the root; '/' at the start means the root, '..' may not leave it."""
    parts: list[str] = []
    for part in linkname.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafeLayer(f"hard link target {linkname!r} points outside the layer root")
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise UnsafeLayer(f"hard link target {linkname!r} names the layer root")
    return parts


def _check_ids(member: tarfile.TarInfo) -> None:
    for what, value in (("uid", member.uid), ("gid", member.gid)):
        if not 0 <= value <= MAX_ID:
            raise UnsafeLayer(f"layer entry {member.name!r} has {what} {value}, outside 0..{MAX_ID}")


def _xattrs(member: tarfile.TarInfo) -> dict[str, bytes]:
    result = {}
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            name = key[len("SCHILY.xattr."):]
            if name.startswith(FORBIDDEN_XATTR_PREFIXES):
                raise UnsafeLayer(f"layer entry {member.name!r} sets reserved xattr {name!r}")
            result[name] = value.encode("utf-8", "surrogateescape")
    return result


class _Applier:
    def __init__(self, root: str, options: ApplyOptions) -> None:
        self.root = root
        self.options = options
        self.root_fd = os.open(root, DIR_FLAGS)
        self.result = ApplyResult()
        self.dir_times: list[tuple[list[str], int]] = []  # applied last: creating entries bumps them
        self.written: set[tuple[str, ...]] = set()  # paths this layer made (whiteouts only hide older ones)
        self._parent_cache: tuple[tuple[str, ...], int] | None = None
        self.lower_fds = [os.open(lower, DIR_FLAGS) for lower in options.lowers]

    def close(self) -> None:
        self._drop_parent_cache()
        os.close(self.root_fd)
        for fd in self.lower_fds:
            os.close(fd)

    # --- resolving paths --------------------------------------------------------------------------------------

    def _drop_parent_cache(self) -> None:
        if self._parent_cache is not None:
            os.close(self._parent_cache[1])
            self._parent_cache = None

    def _parent_fd(self, parts: list[str], create: bool = True) -> int:
        """An fd of the directory holding parts[-1], made if missing; never through a symlink.

        The fd belongs to the cache: callers must not close it.
        """
        dir_parts = tuple(parts[:-1])
        if self._parent_cache is not None and self._parent_cache[0] == dir_parts:
            return self._parent_cache[1]
        self._drop_parent_cache()
        fd = os.dup(self.root_fd)
        try:
            for depth, part in enumerate(dir_parts):
                try:
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    self._make_implicit_dir(fd, dir_parts[: depth + 1])
                    child = os.open(part, DIR_FLAGS, dir_fd=fd)
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):
                        what = "a symlink" if _is_symlink(part, fd) else "not a directory"
                        raise UnsafeLayer(
                            f"layer entry {'/'.join(parts)!r} goes through {'/'.join(dir_parts[:depth + 1])!r}, "
                            f"which is {what}"
                        ) from None
                    raise
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        self._parent_cache = (dir_parts, fd)
        return fd

    def _make_implicit_dir(self, parent_fd: int, parts: tuple[str, ...]) -> None:
        """Create a directory the tar did not list; copy its metadata from the lower layer that has it."""
        found = find_in_layers(self.lower_fds, parts) if self.lower_fds else None
        lower = found[0] if found else None
        if lower is not None and not stat.S_ISDIR(lower.st_mode):
            kind = "a symlink" if stat.S_ISLNK(lower.st_mode) else "not a directory"
            raise UnsafeLayer(f"layer writes under {'/'.join(parts)!r}, which is {kind} in a lower layer")
        name = parts[-1]
        os.mkdir(name, 0o755, dir_fd=parent_fd)
        if lower is not None:
            os.chown(name, lower.st_uid, lower.st_gid, dir_fd=parent_fd, follow_symlinks=False)
            os.chmod(name, stat.S_IMODE(lower.st_mode), dir_fd=parent_fd)
            os.utime(name, ns=(lower.st_atime_ns, lower.st_mtime_ns), dir_fd=parent_fd, follow_symlinks=False)

    # --- entries ----------------------------------------------------------------------------------------------

    def apply(self, tar: tarfile.TarFile) -> ApplyResult:
        # tar.next() rather than iteration: tarfile keeps every member it has read in tar.members, which is
        # cleared as we go so a layer of 100k entries costs no more memory than one of ten.
        while (member := tar.next()) is not None:
            tar.members.clear()
            self.result.entries += 1
            self._apply_member(tar, member)
        self._set_dir_times()
        return self.result

    def _apply_member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        parts = _clean_name(member.name)
        if not parts:  # the root itself: only its metadata
            if member.isdir():
                self._set_metadata(self.root_fd, None, member)
                self.dir_times.append(([], int(member.mtime * 1e9)))
            return
        name = parts[-1]
        if name.startswith(WHITEOUT_PREFIX) and self.options.whiteouts:
            self._whiteout(parts)
            return
        if (member.ischr() or member.isblk() or member.isfifo()) and not self.options.special_files:
            return
        _check_ids(member)
        parent = self._parent_fd(parts)
        key = tuple(parts)
        if member.isdir():
            self._make_dir(parent, name, member)
            self.dir_times.append((parts, int(member.mtime * 1e9)))
        else:
            self._replace(parent, name, parts)
            if member.isreg():
                self._write_file(tar, parent, name, member)
            elif member.issym():
                os.symlink(member.linkname, name, dir_fd=parent)
                self._set_metadata(parent, name, member, symlink=True)
            elif member.islnk():
                self._hardlink(parent, name, member)
            elif member.ischr() or member.isblk():
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent)
                self._set_metadata(parent, name, member)
            elif member.isfifo():
                os.mkfifo(name, 0o600, dir_fd=parent)
                self._set_metadata(parent, name, member)
            else:
                raise UnsafeLayer(f"layer entry {member.name!r} has unsupported tar type {member.type!r}")
        self.written.add(key)

    def _replace(self, parent: int, name: str, parts: list[str]) -> None:
        """Make room for a new non-directory entry: whatever is there goes (a symlink is not followed)."""
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            self._drop_parent_cache_under(parts)
        remove_entry(name, parent)

    def _drop_parent_cache_under(self, parts: list[str]) -> None:
        if self._parent_cache is not None and self._parent_cache[0][: len(parts)] == tuple(parts):
            self._drop_parent_cache()

    def _make_dir(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            os.unlink(name, dir_fd=parent)
            st = None
        if st is None:
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, DIR_FLAGS, dir_fd=parent)
        try:
            self._set_metadata(fd, None, member)
        finally:
            os.close(fd)

    def _write_file(self, tar: tarfile.TarFile, parent: int, name: str, member: tarfile.TarInfo) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=parent)
        try:
            if member.sparse is not None:
                self._copy_sparse(tar, member, fd)
            elif isinstance(tar.fileobj, _TarStream):
                tar.fileobj.copy_to(fd, member.offset_data, member.size)
            else:
                # Uncompressed and seekable: let the kernel copy the bytes.
                _copy_range(tar.fileobj.fileno(), member.offset_data, fd, member.size)  # type: ignore[union-attr]
            self.result.size += member.size
            self._set_metadata(fd, None, member)
        finally:
            os.close(fd)

    def _copy_sparse(self, tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
        extracted = tar.extractfile(member)
        assert extracted is not None and member.sparse is not None
        # The unbuffered reader: it seeks over holes without reading them, even in a stream.
        data = extracted.raw  # type: ignore[attr-defined]
        for offset, length in member.sparse:
            data.seek(offset)
            os.lseek(fd, offset, os.SEEK_SET)
            _copy_stream(data, fd, length, member.name)
        os.ftruncate(fd, member.size)

    def _hardlink(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        target = _clean_link_target(member.linkname)
        target_parent = os.dup(self._parent_fd(target, create=True))
        try:
            # _parent_fd's cache now holds the target's directory; the entry's own parent fd may be closed.
            try:
                os.stat(target[-1], dir_fd=target_parent, follow_symlinks=False)
            except FileNotFoundError:
                if not self._copy_up(tuple(target), target_parent):
                    raise UnsafeLayer(
                        f"hard link {member.name!r} points to {member.linkname!r}, which does not exist"
                    ) from None
            entry_parent = self._parent_fd(_clean_name(member.name))
            os.link(target[-1], name, src_dir_fd=target_parent, dst_dir_fd=entry_parent, follow_symlinks=False)
        finally:
            os.close(target_parent)

    def _copy_up(self, parts: tuple[str, ...], parent: int) -> bool:
        """Bring a file of a lower layer into this one, so a hard link in this layer can point at it."""
        found = find_in_layers(self.lower_fds, parts)
        if found is None:
            return False
        st, lower_fd = found
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            return False
        fd = os.dup(lower_fd)
        try:
            for part in parts[:-1]:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
            if stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(parts[-1], dir_fd=fd), parts[-1], dir_fd=parent)
            else:
                src = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                try:
                    dst = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  0o600, dir_fd=parent)
                    try:
                        _copy_range(src, 0, dst, st.st_size)
                    finally:
                        os.close(dst)
                finally:
                    os.close(src)
            os.chown(parts[-1], st.st_uid, st.st_gid, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                os.chmod(parts[-1], stat.S_IMODE(st.st_mode), dir_fd=parent)
            os.utime(parts[-1], ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=parent, follow_symlinks=False)
            return True
        finally:
            os.close(fd)

    def _whiteout(self, parts: list[str]) -> None:
        name = parts[-1]
        if name == OPAQUE_WHITEOUT:
            dir_parts = parts[:-1]
            if self.options.overlay_whiteouts:
                fd = self._dir_fd(dir_parts)
                try:
                    os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
                finally:
                    os.close(fd)
            else:
                keep = {p[len(dir_parts)] for p in self.written
                        if len(p) > len(dir_parts) and list(p[: len(dir_parts)]) == dir_parts}
                fd = self._dir_fd(dir_parts)
                try:
                    empty_dir(".", fd, keep=keep)
                finally:
                    os.close(fd)
                self._drop_parent_cache_under(dir_parts)
            return
        if name.startswith(AUFS_META_PREFIX):
            return
        hidden = name[len(WHITEOUT_PREFIX):]
        if hidden in ("", ".", "..") or "/" in hidden:
            raise UnsafeLayer(f"malformed whiteout {'/'.join(parts)!r}")
        target = parts[:-1] + [hidden]
        if tuple(target) in self.written:
            return  # a whiteout only hides older layers' files, never this layer's own
        parent = self._parent_fd(target)
        if self.options.overlay_whiteouts:
            self._replace(parent, hidden, target)
            os.mknod(hidden, stat.S_IFCHR | 0o600, os.makedev(0, 0), dir_fd=parent)
        else:
            self._drop_parent_cache_under(target)
            remove_entry(hidden, parent)

    def _dir_fd(self, parts: list[str]) -> int:
        """A new fd of the directory at `parts`, made if missing."""
        if not parts:
            return os.dup(self.root_fd)
        parent = self._parent_fd(parts)
        try:
            return os.open(parts[-1], DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            self._make_implicit_dir(parent, tuple(parts))
            return os.open(parts[-1], DIR_FLAGS, dir_fd=parent)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeLayer(f"opaque whiteout in {'/'.join(parts)!r}, which is not a directory") from None
            raise

    # --- metadata ---------------------------------------------------------------------------------------------

    def _set_metadata(self, fd: int, name: str | None, member: tarfile.TarInfo, symlink: bool = False) -> None:
        """Owner, then mode (chown clears setuid bits), xattrs and times; on the fd, or on a symlink itself."""
        if self.options.same_owner:
            if name is None:
                os.fchown(fd, member.uid, member.gid)
            else:
                os.chown(name, member.uid, member.gid, dir_fd=fd, follow_symlinks=False)
        if not symlink:
            mode = member.mode & 0o7777
            if name is None:
                os.fchmod(fd, mode)
            else:
                os.chmod(name, mode, dir_fd=fd)
        for key, value in _xattrs(member).items():
            try:
                if name is None:
                    os.setxattr(fd, key, value)
                else:
                    os.setxattr(f"/proc/self/fd/{fd}/{name}", key, value, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise UnsafeLayer(f"layer entry {member.name!r}: cannot set xattr {key}: "
                                      f"{os.strerror(e.errno)}") from None
        if member.isdir():
            return  # directories get their times at the end
        mtime = int(member.mtime * 1e9)
        if name is None:
            os.utime(fd, ns=(mtime, mtime))
        else:
            os.utime(name, ns=(mtime, mtime), dir_fd=fd, follow_symlinks=False)

    def _set_dir_times(self) -> None:
        self._drop_parent_cache()
        for parts, mtime in reversed(self.dir_times):
            try:
                fd = self._walk_existing(parts)
            except OSError:
                continue  # removed again later in the layer
            try:
                os.utime(fd, ns=(mtime, mtime))
            finally:
                os.close(fd)

    def _walk_existing(self, parts: list[str]) -> int:
        fd = os.dup(self.root_fd)
        try:
            for part in parts:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        return fd


def _is_symlink(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _copy_stream(data, fd: int, length: int, name: str) -> None:
    """Copy `length` bytes from a tar member's stream to fd, in bounded chunks."""
    remaining = length
    while remaining:
        chunk = data.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise tarfile.ReadError(f"unexpected end of data in {name!r}")
        _write_all(fd, chunk)
        remaining -= len(chunk)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_range(src: int, offset: int, dst: int, size: int) -> None:
    """Copy `size` bytes from src at `offset` to dst's current position, in the kernel where possible."""
    remaining = size
    while remaining:
        try:
            n = os.copy_file_range(src, dst, remaining, offset)
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            n = os.sendfile(dst, src, offset, remaining)
        if n == 0:
            raise tarfile.ReadError("unexpected end of data")
        offset += n
        remaining -= n


class _TarStream:
    """An uncompressed tar stream as tarfile's random-access mode reads it: read, tell, and seek forward only.

    tarfile reads headers through it; regular files' contents are written by copy_to, slices of the source's
    own chunks handed to os.write. Whatever `source.read` returns (a short read is not the end) is used.
    """

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.pos = 0
        self.buf = memoryview(b"")  # the unread rest of the last chunk

    def _fill(self) -> bool:
        self.buf = memoryview(self.source.read(COPY_CHUNK))
        return bool(self.buf)

    def _take(self, size: int) -> memoryview | None:
        """Up to `size` bytes of the current chunk (the next one if it is used up); None at the end."""
        if not self.buf and not self._fill():
            return None
        piece, self.buf = self.buf[:size], self.buf[size:]
        self.pos += len(piece)
        return piece

    def tell(self) -> int:
        return self.pos

    def read(self, size: int | None = -1) -> bytes:
        wanted = -1 if size is None else size
        pieces = []
        while wanted != 0:
            piece = self._take(wanted if wanted > 0 else COPY_CHUNK)
            if piece is None:
                break
            pieces.append(piece)
            if wanted > 0:
                wanted -= len(piece)
        return b"".join(pieces)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Forward only (tarfile skips padding and unread contents so); past the end stops at the end."""
        if whence == os.SEEK_CUR:
            offset += self.pos
        elif whence != os.SEEK_SET:
            raise tarfile.StreamError("seeking from the end of a stream")
        if offset < self.pos:
            raise tarfile.StreamError("seeking backwards is not allowed in a layer stream")
        while self.pos < offset and self._take(offset - self.pos) is not None:
            pass
        return self.pos

    def copy_to(self, fd: int, offset: int, size: int) -> None:
        """Write the `size` bytes at `offset` (not behind us) to fd."""
        self.seek(offset)
        while size:
            piece = self._take(size)
            if piece is None:
                raise tarfile.ReadError("unexpected end of data")
            _write_all(fd, piece)
            size -= len(piece)


def open_tar_stream(stream: BinaryIO) -> tarfile.TarFile:
    """A reader over an uncompressed tar read from a stream (see _TarStream)."""
    return tarfile.TarFile(fileobj=_TarStream(stream), mode="r")  # type: ignore[arg-type]


def apply_layer(stream: BinaryIO, root: str, options: ApplyOptions | None = None, *,
                seekable: bool = False) -> ApplyResult:
    """Apply an uncompressed layer tar read from `stream` onto the directory `root`.

    With `seekable`, `stream` must be a real file positioned at the start of the tar; file data is then copied
    by the kernel (copy_file_range) instead of through Python.
    """
    options = options or ApplyOptions()
    applier = _Applier(root, options)
    try:
        tar = tarfile.open(fileobj=stream, mode="r:") if seekable else open_tar_stream(stream)
        with tar:
            return applier.apply(tar)
    except tarfile.TarError as e:
        raise UnsafeLayer(f"invalid layer tar: {e}") from None
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise UnsafeLayer(f"layer has a path too long for this system: {e}") from None
        raise
    finally:
        applier.close()

