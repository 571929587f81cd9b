"""`builder prune`: dropping build cache records, then collecting the layers only they kept alive.

Without `all_records`, only records whose layer no image uses go (Docker's "dangling" cache); with it, every
record, RUN cache mounts and the memo of context file digests. `until` keeps records used since that time.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from dockyard.build.cache import BuildCache


@dataclass
class PruneReport:
    records: int
    reclaimed: int


def prune_build_cache(engine, all_records: bool = False, until: float | None = None) -> PruneReport:  # type: ignore[no-untyped-def]
    cache = BuildCache(engine.db)
    in_images = set() if all_records else _chains_used_by_images(engine)
    doomed = [key for key, kind, _, last_used, chain in cache.entries()
              if (until is None or last_used < until)
              and (all_records or kind == "image" or chain is None or chain not in in_images)]
    cache.delete(doomed)
    reclaimed = 0
    if all_records and until is None:
        build_dir = os.path.join(engine.root_dir, "build")
        reclaimed += _remove_dir(os.path.join(build_dir, "cache-mounts"))
        try:
            os.unlink(os.path.join(build_dir, "digests.cache"))
        except FileNotFoundError:
            pass
    reclaimed += engine.store.collect_garbage().bytes
    return PruneReport(len(doomed), reclaimed)


def _chains_used_by_images(engine) -> set[str]:  # type: ignore[no-untyped-def]
    """Every snapshot key on the layer chain of some image."""
    rows = engine.db.query("SELECT key, parent FROM snapshots WHERE kind = 'committed'")
    parents = {r["key"]: r["parent"] for r in rows}
    used: set[str] = set()
    for (top,) in engine.db.query("SELECT chain_id FROM images WHERE chain_id IS NOT NULL"):
        key = top
        while key is not None and key not in used:
            used.add(key)
            key = parents.get(key)
    return used


def _remove_dir(path: str) -> int:
    from dockyard.fsutil import tree_size

    if not os.path.isdir(path):
        return 0
    size = tree_size(path)
    shutil.rmtree(path, ignore_errors=True)
    return size
