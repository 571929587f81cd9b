"""Content digests of COPY/ADD sources, for the build cache key.

A digest covers, for every entry a copy would write: its path relative to the source, type, permission
bits, owner, size, and content (regular files) or target (symlinks) or device number. Modification times are
left out, as Docker does, so touching a file without changing it keeps the cache. Unchanged files need not be
re-read: pass a `DigestCache` kept across builds (keyed by inode, size, mtime and ctime).
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import MutableMapping

from dockyard.build.sources import CopyPlan
from dockyard.build.tree import Entry, SourceTree

CHUNK = 1 << 20
DigestCache = MutableMapping[tuple[int, int, int, int, int], str]


def file_digest(entry: Entry, cache: DigestCache | None = None) -> str:
    st = entry.st
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if cache is not None and key in cache:
        return cache[key]
    h = hashlib.sha256()
    fd = entry.open()
    try:
        while chunk := os.read(fd, CHUNK):
            h.update(chunk)
    finally:
        os.close(fd)
    digest = h.hexdigest()
    if cache is not None:
        cache[key] = digest
    return digest


def entry_record(entry: Entry, cache: DigestCache | None = None) -> bytes:
    """One line describing an entry; equal lines mean an equal copy."""
    st = entry.st
    mode = st.st_mode
    if stat.S_ISREG(mode):
        content = f"file {st.st_size} {file_digest(entry, cache)}"
    elif stat.S_ISLNK(mode):
        content = f"symlink {entry.link}"
    elif stat.S_ISDIR(mode):
        content = "dir"
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        content = f"device {os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    else:
        content = "special"
    kind, perms = stat.S_IFMT(mode), stat.S_IMODE(mode)
    record = f"{entry.rel}\0{kind:o}\0{perms:o}\0{st.st_uid}\0{st.st_gid}\0{content}\n"
    return record.encode("utf-8", errors="surrogateescape")


def copy_digest(tree: SourceTree, plan: CopyPlan, cache: DigestCache | None = None) -> str:
    """`sha256:<hex>` over everything `plan` copies, and where each item goes."""
    h = hashlib.sha256()
    for item in plan.items:
        h.update(f"item\0{item.kind}\0{item.target}\0{item.name}\0{int(item.dest_is_dir)}\n".encode(
            "utf-8", errors="surrogateescape"))
        for entry in tree.walk(item.source, excludes=item.excludes):
            h.update(entry_record(entry, cache))
    return "sha256:" + h.hexdigest()
