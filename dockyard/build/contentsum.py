"""Content digests of what a COPY/ADD (or a RUN bind mount) reads, with per-file digests to explain misses.

`plan_digest` gives exactly `hashing.copy_digest` (one walk), plus the digest of each entry's record, keyed
by its path in the source tree, so that a later cache miss can name the file that changed.
"""

from __future__ import annotations

import hashlib

from dockyard.build.hashing import DigestCache, entry_record
from dockyard.build.sources import CopyPlan
from dockyard.build.tree import SourceTree

Files = list[tuple[str, str]]  # (path in the source tree, digest of the entry's record)


def plan_digest(tree: SourceTree, plan: CopyPlan, cache: DigestCache | None = None,
                files: Files | None = None, prefix: str = "") -> str:
    """`sha256:<hex>` of everything `plan` copies (equal to hashing.copy_digest); appends to `files`."""
    h = hashlib.sha256()
    for item in plan.items:
        h.update(f"item\0{item.kind}\0{item.target}\0{item.name}\0{int(item.dest_is_dir)}\n".encode(
            "utf-8", errors="surrogateescape"))
        for entry in tree.walk(item.source, excludes=item.excludes):
            record = entry_record(entry, cache)
            h.update(record)
            if files is not None:
                files.append((prefix + (entry.path or "."), hashlib.sha256(record).hexdigest()[:16]))
    return "sha256:" + h.hexdigest()


def bytes_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()
