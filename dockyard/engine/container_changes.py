"""What a container changed: `diff`'s A/C/D list and the layer `commit` makes of it.

The writable layer of an overlay snapshot *is* the list of changes: each entry of its upper directory was
added or modified, a 0/0 character device is a deletion, an opaque directory hides what was below. It is read
through fds (the container may be running and rearranging it), and each path is classified against the
image's layers the way Docker's archive.Changes does: walk order (names sorted, parents first), A when no lower
layer has the path, C when one does, a directory that only carries changed children is left out unless an
addition or deletion inside it pulls it in as C.

Docker keeps the files it creates for every container (/etc/hosts, /etc/hostname, /etc/resolv.conf, mount
points...) in an "init" layer under the writable one, so they never show in `diff` or a committed image. Here
the runtime creates them in the writable layer when the image lacks them; they are recognised (an empty file
or directory at one of those paths, absent from the image) and left out the same way.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterator

from dockyard.fsutil import DIR_FLAGS
from dockyard.image.overlay import find_in_layers, is_opaque, is_whiteout

PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
RESOLVE_NO_SYMLINKS = 0x04  # openat2: no symlink anywhere in the path
RESOLVE_BENEATH = 0x08  # openat2: never above the directory fd

# Docker's init layer (daemon/initlayer): what every container gets that is not the user's change.
INIT_PATHS = frozenset({"dev", "dev/pts", "dev/shm", "dev/mqueue", "dev/console", "proc", "sys", ".dockerenv",
                        "etc", "etc/resolv.conf", "etc/hosts", "etc/hostname", "etc/mtab"})

KIND_CODES = {"C": 0, "A": 1, "D": 2}


class Entry:
    """One entry of the writable layer (a plain class: `diff` should not pay for importing dataclasses)."""

    __slots__ = ("children", "dir_fd", "name", "opaque", "path", "st")

    def __init__(self, path: str, st: os.stat_result | None, dir_fd: int = -1, name: str = "",
                 opaque: bool = False, children: list[str] | None = None) -> None:
        self.path = path  # relative, no leading '/'
        self.st = st  # None: a deletion
        self.dir_fd = dir_fd  # readable fd of its directory, valid while the walk is suspended on this entry
        self.name = name
        self.opaque = opaque
        self.children = children or []

    @property
    def deleted(self) -> bool:
        return self.st is None

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)


def walk_upper(upper: str) -> Iterator[Entry]:
    """The entries of an overlay upper directory, depth first, names sorted; never following a symlink."""
    from dockyard.engine.fs_tar import raise_fd_limit

    raise_fd_limit()
    top = os.open(upper, DIR_FLAGS)
    stack: list[tuple[int, list[str], str]] = [(top, sorted(os.listdir(top), reverse=True), "")]
    try:
        while stack:
            dir_fd, names, prefix = stack[-1]
            if not names:
                os.close(dir_fd)
                stack.pop()
                continue
            name = names.pop()
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            path = prefix + name
            if is_whiteout(st):
                yield Entry(path, None, dir_fd, name)
                continue
            if not stat.S_ISDIR(st.st_mode):
                yield Entry(path, st, dir_fd, name)
                continue
            try:
                sub = os.open(name, DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue  # replaced by a non-directory meanwhile
            children = sorted(os.listdir(sub))
            stack.append((sub, list(reversed(children)), path + "/"))
            yield Entry(path, st, dir_fd, name, is_opaque(sub), children)
    finally:
        for frame in stack:
            os.close(frame[0])


class Lowers:
    """Looks paths up in the image's layer directories (top first), as overlayfs would, without following links."""

    def __init__(self, dirs: list[str]) -> None:
        self.fds = [os.open(d, DIR_FLAGS) for d in dirs]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)

    def lookup(self, path: str) -> os.stat_result | None:
        found = find_in_layers(self.fds, path.split("/"))
        return found[0] if found else None


def is_init_placeholder(entry: Entry, lower: os.stat_result | None) -> bool:
    """An empty file or directory the runtime made for a mount (Docker's init layer), not the user's change.

    A directory counts when everything in it is such a placeholder too (/etc made only to hold /etc/hosts).
    """
    if entry.deleted or lower is not None or entry.path not in INIT_PATHS:
        return False
    st = entry.st
    assert st is not None
    if stat.S_ISREG(st.st_mode):
        return st.st_size == 0
    return stat.S_ISDIR(st.st_mode) and all(f"{entry.path}/{name}" in INIT_PATHS for name in entry.children)


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    """Docker's test for a directory that was only copied up: same size, mode and (second-granular) mtime."""
    same_time = a.st_mtime_ns == b.st_mtime_ns or (
        a.st_mtime_ns // 10**9 == b.st_mtime_ns // 10**9 and (a.st_mtime_ns % 10**9 == 0 or b.st_mtime_ns % 10**9 == 0))
    return a.st_size == b.st_size and a.st_mode == b.st_mode and same_time


def _only_placeholders(entry: Entry, lowers: Lowers) -> bool:
    """A directory whose upper copy holds nothing but init placeholders: it changed only because of them."""
    return bool(entry.children) and all(
        f"{entry.path}/{name}" in INIT_PATHS and lowers.lookup(f"{entry.path}/{name}") is None
        for name in entry.children)


def _unchanged_dir(entry: Entry, lower: os.stat_result | None, lowers: Lowers) -> bool:
    return (entry.is_dir and lower is not None and stat.S_ISDIR(lower.st_mode)
            and (_same_dir(entry.st, lower) or _only_placeholders(entry, lowers)))  # type: ignore[arg-type]


def classify(entries: Iterator[Entry], lowers: Lowers, full_copy: bool = False) -> Iterator[tuple[str, str]]:
    """(absolute path, 'A'|'C'|'D') in Docker's order and with Docker's rules (pkg/archive changes()).

    `full_copy` (plain-copy snapshots) follows Docker's naive differ instead: every directory with a change
    anywhere inside it is listed as changed, since no copied-up directory says so by itself.
    """
    changed_dirs: set[str] = set()
    for entry in entries:
        path = "/" + entry.path
        lower = None if entry.deleted else lowers.lookup(entry.path)
        if is_init_placeholder(entry, lower):
            continue
        if entry.deleted:
            kind = "D"
        elif entry.is_dir and entry.opaque and lowers.lookup(entry.path) is not None:
            kind = "D"  # an opaque directory replaced the one below (overlayDeletedFile)
        else:
            kind = "A"
            if lower is not None:
                if _unchanged_dir(entry, lower, lowers):
                    continue
                kind = "C"
        if entry.is_dir:
            changed_dirs.add(path)
        if full_copy:
            missing = []
            parent = posixpath.dirname(path)
            while parent != "/" and parent not in changed_dirs:
                missing.append(parent)
                changed_dirs.add(parent)
                parent = posixpath.dirname(parent)
            for directory in reversed(missing):
                yield directory, "C"
        elif kind in ("A", "D"):
            parent = posixpath.dirname(path)
            if parent not in changed_dirs and parent != "/":
                yield parent, "C"
                changed_dirs.add(parent)
        yield path, kind


def _vfs_entries(snapshots, snap) -> Iterator[Entry]:
    """The same entries for a plain-copy snapshot, from comparing it with its parent."""
    for change in snapshots.changes(snap):
        if change.source is None:
            yield Entry(change.path, None)
            continue
        st = os.lstat(change.source)
        children = sorted(os.listdir(change.source)) if stat.S_ISDIR(st.st_mode) else []
        yield Entry(change.path, st, opaque=change.opaque, children=children)


def _lower_dirs(snapshots, snap) -> list[str]:
    return [snapshots.fs(s) for s in snapshots.chain(snap.parent)] if snap.parent else []


def container_changes(engine, record) -> list[dict]:
    """GET /containers/{id}/changes: [{"Path": "/tmp", "Kind": 0}, ...] (0 modified, 1 added, 2 deleted)."""
    from dockyard.store.snapshots import OVERLAY

    snapshots = engine.store.snapshots
    snap = snapshots.get(f"container/{record.id}")
    full_copy = snapshots.driver != OVERLAY
    if full_copy:
        lowers = Lowers([snapshots.fs(snapshots.get(snap.parent))] if snap.parent else [])
        entries = _vfs_entries(snapshots, snap)
    else:
        lowers = Lowers(_lower_dirs(snapshots, snap))
        entries = walk_upper(snapshots.fs(snap))
    try:
        return [{"Path": path, "Kind": KIND_CODES[kind]} for path, kind in classify(entries, lowers, full_copy)]
    finally:
        lowers.close()


def write_layer(engine, record, out) -> bool:
    """The container's changes as a layer tar on `out`; returns False when there are none (an empty layer)."""
    from dockyard.engine.fs_tar import TreeArchiver
    from dockyard.store.snapshots import OVERLAY

    snapshots = engine.store.snapshots
    snap = snapshots.get(f"container/{record.id}")
    written = False
    with TreeArchiver(out) as archiver:
        if snapshots.driver == OVERLAY:
            lowers = Lowers(_lower_dirs(snapshots, snap))
            try:
                for entry in walk_upper(snapshots.fs(snap)):
                    if entry.deleted:
                        archiver.whiteout(entry.path)
                        written = True
                        continue
                    lower = lowers.lookup(entry.path)
                    if is_init_placeholder(entry, lower):
                        continue
                    fd = os.open(entry.name, PATH_FLAGS, dir_fd=entry.dir_fd)
                    try:
                        added = archiver.add(fd, entry.path) is not None
                    finally:
                        os.close(fd)
                    # A directory that was only copied up is in the layer, but is not a change by itself.
                    written = written or (added and not _unchanged_dir(entry, lower, lowers))
                    if entry.opaque:
                        archiver.opaque(entry.path)
            finally:
                lowers.close()
        else:
            written = _write_vfs_layer(snapshots, snap, archiver)
    return written


def _write_vfs_layer(snapshots, snap, archiver) -> bool:
    from dockyard.runtime import syscalls

    lowers = Lowers([snapshots.fs(snapshots.get(snap.parent))] if snap.parent else [])
    root = os.open(snapshots.fs(snap), DIR_FLAGS)
    written = False
    try:
        for entry in _vfs_entries(snapshots, snap):
            if entry.deleted:
                archiver.whiteout(entry.path)
                written = True
                continue
            if is_init_placeholder(entry, lowers.lookup(entry.path)):
                continue
            # Below the snapshot's root and through no symlink at all: the container may have planted some.
            fd = syscalls.openat2(root, entry.path, PATH_FLAGS, 0, RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH)
            try:
                written = archiver.add(fd, entry.path) is not None or written
            finally:
                os.close(fd)
    finally:
        os.close(root)
        lowers.close()
    return written
