"""Writing COPY/ADD sources into an image's root filesystem, with Docker's ownership, modes and times.

Every destination is resolved inside the root with openat2(RESOLVE_IN_ROOT): a symlink in the image
(`/app -> /opt/app`, even `/app -> ../../..`) is followed as the container would see it and can never lead
outside. Missing parent directories are made (0755, owned by --chown's user or root). Entries are then made
relative to directory fds, never through a path that could be swapped. Files are copied by the kernel
(copy_file_range).

Ownership: --chown's ids, else root (0:0) for COPY; an unpacked archive keeps the ids of its entries.
Modes: the source's, or --chmod (octal, or symbolic like `u+x,go=rX`) for every copied entry. Times: the
source's modification time; a directory's is set after its content is written.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from dataclasses import dataclass
from typing import Self

from dockyard.build.errors import DockerfileError
from dockyard.build.sources import CopyItem, CopyPlan
from dockyard.build.tree import Entry, SourceTree
from dockyard.errors import InvalidArgument
from dockyard.fsutil import remove_entry
from dockyard.runtime import syscalls

_RESOLVE = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
PATH_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
COPY_CHUNK = 1 << 30


@dataclass(frozen=True)
class Ownership:
    uid: int | None = None  # None: see `preserve`
    gid: int | None = None
    preserve: bool = False  # keep the source's ids (unpacked archives) instead of root

    def of(self, st: os.stat_result) -> tuple[int, int]:
        if self.uid is not None and self.gid is not None:
            return self.uid, self.gid
        return (st.st_uid, st.st_gid) if self.preserve else (0, 0)

    @property
    def for_new_dirs(self) -> tuple[int, int]:
        return (self.uid, self.gid) if self.uid is not None and self.gid is not None else (0, 0)


class TreeWriter:
    """Writes entries under `root` (an image's root filesystem, or a layer's upper directory)."""

    def __init__(self, root: str, owner: Ownership, chmod: int | str | None = None) -> None:
        self.root_fd = os.open(root, PATH_DIR)
        self.owner = owner
        self.chmod = chmod

    def close(self) -> None:
        os.close(self.root_fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- paths in the image
    def _open(self, path: str, flags: int = PATH_DIR) -> int:
        rel = posixpath.normpath("/" + path).lstrip("/") or "."
        return syscalls.openat2(self.root_fd, rel, flags | os.O_CLOEXEC, 0, _RESOLVE)

    def is_dir(self, path: str) -> bool:
        try:
            os.close(self._open(path))
            return True
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return False
            raise

    def make_dirs(self, path: str) -> tuple[int, bool]:
        """An O_PATH fd on directory `path` (made with its parents when missing); True when it was made."""
        parts = [p for p in posixpath.normpath("/" + path).split("/") if p]
        fd = os.open(".", PATH_DIR, dir_fd=self.root_fd)
        made = False
        uid, gid = self.owner.for_new_dirs
        try:
            for i, name in enumerate(parts):
                prefix = "/".join(parts[: i + 1])
                try:
                    child = self._open(prefix)
                except FileNotFoundError:
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                        os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
                        made = True
                    except FileExistsError:
                        pass  # a dangling symlink: the open below decides
                    child = self._open(prefix)
                except NotADirectoryError:
                    raise DockerfileError(f"cannot copy to /{prefix}: it is not a directory in the image") from None
                os.close(fd)
                fd = child
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ENOTDIR, errno.ENOENT, errno.ELOOP):
                raise DockerfileError(f"cannot make directory /{'/'.join(parts)} in the image: "
                                      f"{e.strerror}") from None
            raise
        except BaseException:
            os.close(fd)
            raise
        return fd, made

    # -- copying
    def copy_plan(self, tree: SourceTree, plan: CopyPlan) -> None:
        for item in plan.items:
            if item.kind == "dir":
                self._copy_dir(tree, item)
            else:
                self._copy_single(tree, item)

    def _copy_single(self, tree: SourceTree, item: CopyItem) -> None:
        target = item.target
        if item.check_existing_dir and self.is_dir(target):
            target = posixpath.join(target, item.name)
        parent, name = posixpath.split(target)
        if not name:
            raise DockerfileError(f"cannot copy a file to {target}")
        parent_fd, _ = self.make_dirs(parent)
        try:
            for entry in tree.walk(item.source, excludes=item.excludes):
                self._write(parent_fd, name, entry)
                break
        finally:
            os.close(parent_fd)

    def _copy_dir(self, tree: SourceTree, item: CopyItem) -> None:
        top_fd, made = self.make_dirs(item.target)
        # (relative path, O_PATH fd, mtime to set once its content is written); bounded by the tree's depth
        stack: list[tuple[str, int, int | None]] = []
        try:
            for entry in tree.walk(item.source, excludes=item.excludes):
                if entry.rel == "":
                    if made:
                        self._set_meta_dir(top_fd, entry.st)
                    stack.append(("", top_fd, entry.st.st_mtime_ns if made else None))
                    continue
                parent_rel, _, name = entry.rel.rpartition("/")
                while stack and stack[-1][0] != parent_rel:
                    _close_dir(stack.pop())
                if not stack:
                    raise DockerfileError(f"copy of {entry.path!r}: its directory was not copied first")
                fd = self._write(stack[-1][1], name, entry)
                if fd is not None:
                    stack.append((entry.rel, fd, entry.st.st_mtime_ns))
            while stack:
                _close_dir(stack.pop())
        except BaseException:
            for frame in stack:
                os.close(frame[1])
            raise

    def _mode(self, st: os.stat_result) -> int:
        mode = stat.S_IMODE(st.st_mode)
        if self.chmod is None:
            return mode
        if isinstance(self.chmod, int):
            return self.chmod
        return apply_symbolic_mode(mode, self.chmod, stat.S_ISDIR(st.st_mode))

    def _set_meta_dir(self, fd: int, st: os.stat_result) -> None:
        real = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            uid, gid = self.owner.of(st)
            os.fchown(real, uid, gid)
            os.fchmod(real, self._mode(st))
        finally:
            os.close(real)

    def _write(self, parent_fd: int, name: str, entry: Entry) -> int | None:
        """Make `name` in `parent_fd` like `entry`; for a directory, return an O_PATH fd on it."""
        st = entry.st
        mode = st.st_mode
        existing = _lstat(name, parent_fd)
        if stat.S_ISDIR(mode):
            if existing is not None and not stat.S_ISDIR(existing.st_mode):
                remove_entry(name, parent_fd)
                existing = None
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            try:
                uid, gid = self.owner.of(st)
                os.fchown(fd, uid, gid)
                os.fchmod(fd, self._mode(st))
                return os.open(".", PATH_DIR, dir_fd=fd)
            finally:
                os.close(fd)
        if existing is not None:
            remove_entry(name, parent_fd)
        uid, gid = self.owner.of(st)
        times = (st.st_atime_ns, st.st_mtime_ns)
        if stat.S_ISREG(mode):
            out = os.open(name, NEW_FILE, 0o600, dir_fd=parent_fd)
            try:
                src = entry.open()
                try:
                    _copy_data(src, out, st.st_size)
                finally:
                    os.close(src)
                os.fchown(out, uid, gid)  # before the mode: a chown clears setuid bits
                os.fchmod(out, self._mode(st))
                os.utime(out, ns=times)
            finally:
                os.close(out)
        elif stat.S_ISLNK(mode):
            os.symlink(entry.link or "", name, dir_fd=parent_fd)
            os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
            os.utime(name, ns=times, dir_fd=parent_fd, follow_symlinks=False)
        elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(name, stat.S_IFMT(mode) | 0o600, st.st_rdev, dir_fd=parent_fd)
            os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
            os.chmod(name, self._mode(st), dir_fd=parent_fd)
            os.utime(name, ns=times, dir_fd=parent_fd, follow_symlinks=False)
        # sockets are not copied (Docker leaves them out too)
        return None

    def write_file(self, path: str, data: bytes, mode: int = 0o644, mtime_ns: int | None = None) -> None:
        """A file with `data` at `path` (a heredoc source)."""
        parent, name = posixpath.split(path)
        parent_fd, _ = self.make_dirs(parent)
        try:
            if _lstat(name, parent_fd) is not None:
                remove_entry(name, parent_fd)
            out = os.open(name, NEW_FILE, 0o600, dir_fd=parent_fd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(out, view):]
                uid, gid = self.owner.for_new_dirs
                os.fchown(out, uid, gid)
                os.fchmod(out, mode if self.chmod is None or not isinstance(self.chmod, int) else self.chmod)
                if mtime_ns is not None:
                    os.utime(out, ns=(mtime_ns, mtime_ns))
            finally:
                os.close(out)
        finally:
            os.close(parent_fd)


def _close_dir(frame: tuple[str, int, int | None]) -> None:
    _, fd, mtime = frame
    try:
        if mtime is not None:
            os.utime(f"/proc/self/fd/{fd}", ns=(mtime, mtime))
    finally:
        os.close(fd)


def _lstat(name: str, dir_fd: int) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _copy_data(src: int, out: int, size: int) -> None:
    done = 0
    while done < size:
        try:
            n = os.copy_file_range(src, out, min(COPY_CHUNK, size - done))
        except OSError as e:
            if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise
            n = os.sendfile(out, src, None, min(COPY_CHUNK, size - done))
        if n == 0:
            break  # the file shrank while being copied: take what there was
        done += n


# -- symbolic modes -------------------------------------------------------------------------------------------

_WHO = {"u": 0o4700, "g": 0o2070, "o": 0o1007}
_PERM = {"r": 0o444, "w": 0o222, "x": 0o111, "s": 0o6000, "t": 0o1000}


def apply_symbolic_mode(mode: int, spec: str, is_dir: bool) -> int:
    """chmod(1)'s symbolic modes, without a umask: `u+x`, `go=rX`, `a-w,u+s`, `g=u`."""
    for clause in spec.split(","):
        i = 0
        who = 0
        while i < len(clause) and clause[i] in "ugoa":
            who |= 0o7777 if clause[i] == "a" else _WHO[clause[i]]
            i += 1
        if who == 0:
            who = 0o7777
        while i < len(clause):
            op = clause[i]
            if op not in "+-=":
                raise InvalidArgument(f"invalid chmod parameter: {spec!r}")
            i += 1
            bits = 0
            if i < len(clause) and clause[i] in "ugo":
                source = clause[i]
                shift = {"u": 6, "g": 3, "o": 0}[source]
                perms = (mode >> shift) & 0o7
                bits = perms << 6 | perms << 3 | perms
                i += 1
            else:
                while i < len(clause) and clause[i] in "rwxXst":
                    ch = clause[i]
                    if ch == "X":
                        if is_dir or mode & 0o111:
                            bits |= 0o111
                    else:
                        bits |= _PERM[ch]
                    i += 1
            bits &= who
            if op == "+":
                mode |= bits
            elif op == "-":
                mode &= ~bits
            else:
                mode = (mode & ~who) | bits
    return mode & 0o7777
