"""Safe reading of a source tree: the build context, or a stage's root filesystem for COPY --from.

Everything is opened one component at a time from a directory fd with O_NOFOLLOW, so a symlink can never
redirect a read, and walks keep an explicit stack (no recursion, any depth). Symlinks are only followed by
`resolve`, component by component:

* in the build context (`confine=True`) a symlink whose target leaves the context (absolute, or `..` above
  the root) is refused with an error; the target is never read;
* in a root filesystem (`confine=False`) the root acts as `/`: absolute targets and `..` stay inside it.

Paths are relative and slash-separated (`""` is the root). `.dockerignore` rules (`ignore`) hide paths: an
ignored file cannot be resolved or walked, as if it were not in the context.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Self

from dockyard.build.dockerignore import PatternMatcher
from dockyard.build.errors import BuildContextError, SourceNotFound

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
MAX_SYMLINK_HOPS = 40


@dataclass
class Entry:
    """One file, directory or link met by a walk. `dir_fd` is only valid while the walk is at this entry."""

    path: str  # relative to the tree root
    rel: str  # relative to where the walk started ("" for the start itself)
    st: os.stat_result
    dir_fd: int
    name: str  # name inside dir_fd
    link: str | None = None  # a symlink's target

    @property
    def kind(self) -> str:
        mode = self.st.st_mode
        if stat.S_ISDIR(mode):
            return "dir"
        if stat.S_ISREG(mode):
            return "file"
        if stat.S_ISLNK(mode):
            return "symlink"
        return "other"

    def open(self) -> int:
        """A read-only fd on this regular file (never through a symlink)."""
        return os.open(self.name, FILE_FLAGS, dir_fd=self.dir_fd)


@dataclass
class _Frame:
    fd: int
    path: str
    names: Iterator[str]
    ignore_info: list[bool] | None
    exclude_info: list[bool] | None
    entry: Entry
    emitted: bool


@dataclass
class SourceTree:
    root: str
    ignore: PatternMatcher | None = None
    confine: bool = True  # True: the build context; False: a root filesystem
    _root_fd: int | None = field(default=None, repr=False)

    # -- lifetime
    @property
    def root_fd(self) -> int:
        if self._root_fd is None:
            try:
                self._root_fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            except OSError as e:
                raise BuildContextError(f"cannot open build context {self.root}: {e.strerror}") from None
        return self._root_fd

    def close(self) -> None:
        if self._root_fd is not None:
            os.close(self._root_fd)
            self._root_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- single paths
    def is_ignored(self, path: str) -> bool:
        return bool(path) and self.ignore is not None and self.ignore.matches(path)

    def open_dir(self, path: str) -> int:
        """An fd on directory `path`, opened without following any symlink on the way."""
        fd = os.dup(self.root_fd)
        try:
            for part in _parts(path):
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except OSError as e:
            os.close(fd)
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise SourceNotFound(f"{path!r} not found") from None
            if e.errno == errno.ELOOP:
                raise BuildContextError(f"{path!r}: a directory was replaced by a symlink") from None
            raise
        return fd

    def lstat(self, path: str) -> os.stat_result | None:
        """The path's own metadata (a symlink is not followed), or None when it does not exist."""
        parent, _, name = path.rpartition("/")
        if not name:
            return os.stat(self.root_fd)
        try:
            fd = self.open_dir(parent)
        except SourceNotFound:
            return None
        try:
            return os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        finally:
            os.close(fd)

    def readlink(self, path: str) -> str:
        parent, _, name = path.rpartition("/")
        fd = self.open_dir(parent)
        try:
            return os.readlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def open_file(self, path: str) -> int:
        parent, _, name = path.rpartition("/")
        fd = self.open_dir(parent)
        try:
            return os.open(name, FILE_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)

    def read_bytes(self, path: str, limit: int | None = None) -> bytes:
        fd = self.open_file(path)
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                return f.read() if limit is None else f.read(limit)
        finally:
            os.close(fd)

    def resolve(self, path: str, *, follow: bool = True) -> str:
        """`path` with every symlink on the way (and at the end, when `follow`) replaced by its target.

        Raises SourceNotFound when a component is missing or ignored, BuildContextError when (in the
        context) the path or a symlink on it leads outside.
        """
        pending = deque(_parts(path, keep_dotdot=True))
        resolved: list[str] = []
        hops = 0
        via = ""  # the last symlink followed, for the error message
        while pending:
            part = pending.popleft()
            if part == "..":
                if resolved:
                    resolved.pop()
                elif self.confine:
                    raise BuildContextError(f"{path!r}{via} points outside the build context")
                continue
            candidate = "/".join([*resolved, part])
            st = self.lstat(candidate)
            if st is None or not self._visible(candidate, st):
                raise SourceNotFound(f"{path!r} not found in the build context" if self.confine
                                     else f"{path!r} not found")
            last = not pending
            if stat.S_ISLNK(st.st_mode) and (follow or not last):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise BuildContextError(f"{path!r}: too many levels of symbolic links")
                target = self.readlink(candidate)
                via = f": symlink {candidate} -> {target}"
                if target.startswith("/"):
                    if self.confine:
                        raise BuildContextError(f"{path!r}: symlink {candidate} -> {target} points outside "
                                                "the build context")
                    resolved = []
                # The target's `..` are handled by the loop: climbing above the root is refused there.
                pending.extendleft(reversed(_parts(target, keep_dotdot=True)))
                continue
            if not last and not stat.S_ISDIR(st.st_mode):
                raise SourceNotFound(f"{path!r} not found ({candidate} is not a directory)")
            resolved.append(part)
        return "/".join(resolved)

    def _visible(self, path: str, st: os.stat_result) -> bool:
        """Kept by .dockerignore, or an ignored directory that still holds kept entries (re-included with
        `!`), which Docker then sends too."""
        if not self.is_ignored(path):
            return True
        if not stat.S_ISDIR(st.st_mode) or not self.ignore.may_reinclude_below(path):  # type: ignore[union-attr]
            return False
        for _ in self.walk(path):
            return True
        return False

    def entry(self, path: str) -> tuple[Entry, int]:
        """The entry of one resolved path and the directory fd it lives in (the caller closes it)."""
        parent, _, name = path.rpartition("/")
        fd = self.open_dir(parent) if name else os.dup(self.root_fd)
        name = name or "."
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            link = os.readlink(name, dir_fd=fd) if stat.S_ISLNK(st.st_mode) else None
        except FileNotFoundError:
            os.close(fd)
            raise SourceNotFound(f"{path!r} not found") from None
        return Entry(path, "", st, fd, name, link), fd

    # -- walks
    def _ignore_info(self, path: str) -> list[bool] | None:
        """Per-pattern results for `path`'s ancestors and itself, as a walk from the root would have them."""
        if self.ignore is None or not path:
            return None
        info: list[bool] | None = None
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            _, info = self.ignore.matches_in_walk("/".join(parts[:i]), info)
        return info

    def walk(self, start: str = "", *, excludes: PatternMatcher | None = None) -> Iterator[Entry]:
        """`start` (a resolved path) and, for a directory, everything below it that is kept, depth first in
        name order; a directory comes before its contents. Symlinks are reported, never followed.

        `excludes` (COPY --exclude) match paths relative to `start`. An excluded or ignored directory is not
        reported, but is still entered when an exception pattern could keep something inside it; it is then
        reported just before the first kept entry below it.
        """
        top, fd = self.entry(start)
        hidden = bool(start) and self.is_ignored(start)  # shown only if something below is kept
        if top.kind != "dir":
            try:
                if hidden:
                    raise SourceNotFound(f"{start!r} not found in the build context")
                yield top
            finally:
                os.close(fd)
            return
        os.close(fd)
        dir_fd = self.open_dir(start)
        top.dir_fd, top.name = dir_fd, "."
        frames = [_Frame(dir_fd, start, iter(sorted(os.listdir(dir_fd))), self._ignore_info(start), None, top,
                         not hidden)]
        try:
            if not hidden:
                yield top
            yield from self._walk_frames(frames, start, excludes)
        finally:
            for frame in frames:
                os.close(frame.fd)

    def _walk_frames(self, frames: list[_Frame], start: str,
                     excludes: PatternMatcher | None) -> Iterator[Entry]:
        ignore = self.ignore
        while frames:
            frame = frames[-1]
            name = next(frame.names, None)
            if name is None:
                frames.pop()
                os.close(frame.fd)
                continue
            path = f"{frame.path}/{name}" if frame.path else name
            rel = path[len(start) + 1:] if start else path
            try:
                st = os.stat(name, dir_fd=frame.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            ignored, ignore_info = (ignore.matches_in_walk(path, frame.ignore_info) if ignore
                                    else (False, None))
            excluded, exclude_info = (excludes.matches_in_walk(rel, frame.exclude_info) if excludes
                                      else (False, None))
            link = os.readlink(name, dir_fd=frame.fd) if stat.S_ISLNK(st.st_mode) else None
            entry = Entry(path, rel, st, frame.fd, name, link)
            if ignored or excluded:
                if is_dir and (not ignored or ignore.may_reinclude_below(path)) and (  # type: ignore[union-attr]
                        not excluded or excludes.may_reinclude_below(rel)):  # type: ignore[union-attr]
                    self._enter(frames, entry, path, ignore_info, exclude_info, emitted=False)
                continue
            for pending in frames:
                if not pending.emitted:
                    pending.emitted = True
                    yield pending.entry
            yield entry
            if is_dir:
                self._enter(frames, entry, path, ignore_info, exclude_info, emitted=True)

    @staticmethod
    def _enter(frames: list[_Frame], entry: Entry, path: str, ignore_info: list[bool] | None,
               exclude_info: list[bool] | None, *, emitted: bool) -> None:
        fd = os.open(entry.name, DIR_FLAGS, dir_fd=entry.dir_fd)
        child = Entry(entry.path, entry.rel, entry.st, entry.dir_fd, entry.name, entry.link)
        names = iter(sorted(os.listdir(fd)))
        frames.append(_Frame(fd, path, names, ignore_info, exclude_info, child, emitted))


def _parts(path: str, keep_dotdot: bool = False) -> list[str]:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not keep_dotdot and ".." in parts:
        raise BuildContextError(f"{path!r}: '..' is not allowed here")
    return parts
