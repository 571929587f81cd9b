"""Create a layer tar from a snapshot's changes.

For an overlay snapshot the changes are exactly its upper directory: an overlay whiteout (a 0/0 character
device) becomes a `.wh.<name>` entry, and a directory marked opaque (`trusted.overlay.opaque=y`) gets a
`.wh..wh..opq` entry after it. For a plain-copy snapshot, `diff_trees` compares it with its parent instead.

Entries come in a stable order (names sorted, parents first), in PAX format, with owners as numbers and no
user or group names, so the same tree always gives the same bytes; `clamp_mtime` (SOURCE_DATE_EPOCH) makes
them independent of when the files were written.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from dockyard.image.layer_apply import OPAQUE_WHITEOUT, WHITEOUT_PREFIX
from dockyard.image.overlay import OVERLAY_OPAQUE_XATTR, is_whiteout

COPY_BUFFER = 1 << 20


@dataclass
class Change:
    """One entry of a layer: a file system object to add, or a path to delete (whiteout)."""

    path: str  # relative, '/'-separated, no leading './'
    source: str | None  # absolute host path of the object; None for a deletion
    opaque: bool = False  # a directory whose lower content is hidden


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.ENODATA):
            return {}
        raise
    result = {}
    for name in sorted(names):
        if name.startswith("trusted.overlay."):
            continue  # overlayfs bookkeeping, not content
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        result["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return result


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def upper_changes(upper: str) -> Iterator[Change]:
    """The changes an overlay upper dir records: depth-first, names sorted, parents first; no recursion."""
    # Each stack item is either ('expand', dir_path, rel_prefix) or ('emit', Change).
    stack: list[tuple[str, object, str]] = [("expand", upper, "")]
    while stack:
        action, item, rel = stack.pop()
        if action == "emit":
            change = item
            assert isinstance(change, Change)
            yield change
            continue
        directory = str(item)
        pending: list[tuple[str, object, str]] = []
        for name in sorted(os.listdir(directory)):
            full = os.path.join(directory, name)
            child_rel = rel + name
            st = os.lstat(full)
            if is_whiteout(st):
                pending.append(("emit", Change(child_rel, None), ""))
            elif stat.S_ISDIR(st.st_mode):
                pending.append(("emit", Change(child_rel, full, opaque=_is_opaque(full)), ""))
                pending.append(("expand", full, child_rel + "/"))
            else:
                pending.append(("emit", Change(child_rel, full), ""))
        stack.extend(reversed(pending))


def diff_trees(lower: str | None, upper: str) -> Iterator[Change]:
    """Changes that turn the tree `lower` into the tree `upper` (both full trees), for plain-copy snapshots.

    A file counts as changed when its type, mode, owner, size, mtime, link target or xattrs differ.
    """
    stack: list[tuple[str, object, str]] = [("expand", "", "")]
    while stack:
        action, item, _ = stack.pop()
        if action == "emit":
            assert isinstance(item, Change)
            yield item
            continue
        rel = str(item)
        up_dir = os.path.join(upper, rel)
        low_dir = os.path.join(lower, rel) if lower is not None else None
        up_names = set(os.listdir(up_dir))
        low_names: set[str] = set()
        if low_dir is not None:
            try:
                low_st = os.lstat(low_dir)
                if stat.S_ISDIR(low_st.st_mode):
                    low_names = set(os.listdir(low_dir))
            except FileNotFoundError:
                pass
        pending: list[tuple[str, object, str]] = []
        for name in sorted(up_names | low_names):
            child_rel = rel + name
            up_path = os.path.join(upper, child_rel)
            if name not in up_names:
                pending.append(("emit", Change(child_rel, None), ""))
                continue
            up_st = os.lstat(up_path)
            low_st = None
            if name in low_names:
                low_st = os.lstat(os.path.join(lower, child_rel))  # type: ignore[arg-type]
            if stat.S_ISDIR(up_st.st_mode):
                if low_st is None or _differs(up_path, up_st, low_st, lower, child_rel):
                    pending.append(("emit", Change(child_rel, up_path), ""))
                pending.append(("expand", child_rel + "/", ""))
            elif low_st is None or _differs(up_path, up_st, low_st, lower, child_rel):
                pending.append(("emit", Change(child_rel, up_path), ""))
        stack.extend(reversed(pending))


def _differs(up_path: str, up: os.stat_result, low: os.stat_result, lower: str | None, rel: str) -> bool:
    if (stat.S_IFMT(up.st_mode) != stat.S_IFMT(low.st_mode) or up.st_mode != low.st_mode
            or up.st_uid != low.st_uid or up.st_gid != low.st_gid):
        return True
    if stat.S_ISDIR(up.st_mode):
        return _xattrs(up_path) != _xattrs(os.path.join(lower or "", rel))
    if up.st_size != low.st_size or up.st_mtime_ns != low.st_mtime_ns or up.st_rdev != low.st_rdev:
        return True
    if stat.S_ISLNK(up.st_mode):
        return os.readlink(up_path) != os.readlink(os.path.join(lower or "", rel))
    return _xattrs(up_path) != _xattrs(os.path.join(lower or "", rel))


def _tarinfo(path: str, source: str, st: os.stat_result, clamp_mtime: int | None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    mtime = int(st.st_mtime)
    info.mtime = min(mtime, clamp_mtime) if clamp_mtime is not None else mtime
    if stat.S_ISREG(st.st_mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(source)
    elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(st.st_mode):
        info.type = tarfile.FIFOTYPE
    else:
        raise ValueError(f"cannot put {source!r} in a layer: sockets are not layer content")
    xattrs = _xattrs(source)
    if xattrs:
        info.pax_headers = xattrs
    return info


def write_layer(changes: Iterator[Change], out: BinaryIO, clamp_mtime: int | None = None) -> None:
    """Write the changes as an uncompressed layer tar to `out`."""
    links: dict[tuple[int, int], str] = {}
    with tarfile.TarFile(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.copybufsize = COPY_BUFFER
        for change in changes:
            if change.source is None:
                parent, _, name = change.path.rpartition("/")
                whiteout = tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name)
                whiteout.mtime = clamp_mtime or 0
                whiteout.uname = whiteout.gname = ""
                whiteout.mode = 0o644
                tar.addfile(whiteout)
                continue
            st = os.lstat(change.source)
            if stat.S_ISSOCK(st.st_mode):
                continue  # sockets are runtime objects; Docker leaves them out too
            info = _tarinfo(change.path, change.source, st, clamp_mtime)
            if info.type == tarfile.REGTYPE and st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                if key in links:
                    info.type, info.linkname, info.size = tarfile.LNKTYPE, links[key], 0
                else:
                    links[key] = change.path
            if info.type == tarfile.REGTYPE:
                with open(change.source, "rb") as data:
                    tar.addfile(info, data)
            else:
                tar.addfile(info)
            if change.opaque:
                marker = tarfile.TarInfo(f"{change.path}/{OPAQUE_WHITEOUT}")
                marker.mtime = info.mtime
                marker.uname = marker.gname = ""
                marker.mode = 0o644
                tar.addfile(marker)
