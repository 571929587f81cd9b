"""The store: one root directory holding blobs, snapshots and their metadata, safe to share between processes.

Leases keep work in progress alive. A process that writes blobs or snapshots first opens a lease and claims
each item in it; garbage collection keeps everything an image references and everything a live lease holds.
A lease whose process has died (killed in the middle of a load, say) protects nothing any more, so the next
sweep removes what it left behind. Sweeps take an exclusive lock; claims take it shared for an instant, so a
claim never interleaves with a sweep that has already decided what to keep.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dockyard.fsutil import remove_tree
from dockyard.procfs import start_time as process_start_time
from dockyard.store.blobs import BlobStore
from dockyard.store.metadata import Database
from dockyard.store.snapshots import Snapshotter, detect_driver


def _own_start_time() -> int:
    start = process_start_time(os.getpid())
    assert start is not None
    return start


class GCReport:
    """What a sweep removed."""

    def __init__(self) -> None:
        self.blobs = 0
        self.snapshots = 0
        self.bytes = 0


class Lease:
    """Work in progress: the blobs and snapshots it claims survive garbage collection until it ends."""

    def __init__(self, store: "Store", lease_id: str) -> None:
        self.store = store
        self.id = lease_id

    def claim_blob(self, digest: str) -> None:
        self.store._claim(self.id, "blob", digest)

    def claim_snapshot(self, key: str) -> None:
        self.store._claim(self.id, "snapshot", key)


class Store:
    def __init__(self, root: Path, db: Database | None = None) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(exist_ok=True)
        self.db = db or Database(root / "metadata.db")
        self.blobs = BlobStore(root)
        self.snapshots = Snapshotter(root, self.db, self._driver())
        self._lock_fd: int | None = None
        self._recover()

    def _driver(self) -> str:
        path = self.root / "storage-driver"
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            driver = detect_driver(self.root)
            path.write_text(driver + "\n")
            return driver

    # --- locking and leases -----------------------------------------------------------------------------------

    @contextmanager
    def _gc_lock(self, exclusive: bool) -> Iterator[None]:
        if self._lock_fd is None:
            self._lock_fd = os.open(self.root / "gc.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        """A lease for the duration of the block. Commit what it made (reference it) before the block ends."""
        lease_id = os.urandom(16).hex()
        with self.db.write() as conn:
            conn.execute("INSERT INTO leases (id, pid, start_time, created) VALUES (?, ?, ?, ?)",
                         (lease_id, os.getpid(), _own_start_time(), time.time()))
        try:
            yield Lease(self, lease_id)
        except BaseException:
            with self.db.write() as conn:
                conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))
            self.collect_garbage()  # a failed operation leaves no stray blob or snapshot behind
            raise
        with self.db.write() as conn:
            conn.execute("DELETE FROM leases WHERE id = ?", (lease_id,))

    def _claim(self, lease_id: str, kind: str, key: str) -> None:
        with self._gc_lock(exclusive=False), self.db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO lease_items (lease, kind, key) VALUES (?, ?, ?)",
                         (lease_id, kind, key))

    def _dead_leases(self) -> list[str]:
        dead = []
        for row in self.db.query("SELECT id, pid, start_time FROM leases"):
            if process_start_time(row["pid"]) != row["start_time"]:
                dead.append(row["id"])
        return dead

    def _recover(self) -> None:
        """Clean up after processes that were killed in the middle of their work."""
        if self._dead_leases():
            self.collect_garbage()

    # --- garbage collection -----------------------------------------------------------------------------------

    def collect_garbage(self) -> GCReport:
        """Remove every blob and snapshot that no image, container or live lease needs."""
        report = GCReport()
        with self._gc_lock(exclusive=True):
            dead = self._dead_leases()
            if dead:
                with self.db.write() as conn:
                    conn.executemany("DELETE FROM leases WHERE id = ?", [(d,) for d in dead])
            # List what exists before reading what is referenced (see Snapshotter.orphan_dirs).
            present = list(self.blobs.digests())
            ingest = list(self.blobs.ingest_files())
            with self.db.read() as conn:
                live_blobs = {r[0] for r in conn.execute(
                    "SELECT digest FROM image_blobs UNION SELECT key FROM lease_items WHERE kind = 'blob' "
                    "UNION SELECT blob FROM build_cache WHERE blob IS NOT NULL")}
                live_pids = {r[0] for r in conn.execute("SELECT pid FROM leases")}
                roots = {r[0] for r in conn.execute(
                    "SELECT chain_id FROM images WHERE chain_id IS NOT NULL "
                    "UNION SELECT key FROM lease_items WHERE kind = 'snapshot' "
                    "UNION SELECT key FROM snapshots WHERE kind = 'active' AND key LIKE 'container/%' "
                    "UNION SELECT chain_id FROM build_cache WHERE chain_id IS NOT NULL")}
                rows = conn.execute("SELECT id, key, parent FROM snapshots").fetchall()
            removed = []
            for digest in present:
                if digest not in live_blobs:
                    path = self.blobs.path(digest)
                    try:
                        report.bytes += path.stat().st_size
                    except FileNotFoundError:
                        continue
                    self.blobs.delete(digest)
                    removed.append((digest, digest))
                    report.blobs += 1
            if removed:  # a gzip blob made for a push (see registry/client/gzip_layers.py) goes with either blob
                with self.db.write() as conn:
                    conn.executemany("DELETE FROM layer_gzips WHERE digest = ? OR gzip = ?", removed)
            for pid, path in ingest:
                if pid not in live_pids or pid == 0:
                    path.unlink(missing_ok=True)
            report.snapshots = self._sweep_snapshots(rows, roots)
        return report

    def _sweep_snapshots(self, rows: list, roots: set[str]) -> int:
        by_key = {r["key"]: r for r in rows}
        live: set[str] = set()
        for key in roots:
            while key is not None and key not in live and key in by_key:
                live.add(key)
                key = by_key[key]["parent"]
        doomed = [r for r in rows if r["key"] not in live]
        if doomed:
            with self.db.write() as conn:
                conn.executemany("DELETE FROM snapshots WHERE id = ?", [(r["id"],) for r in doomed])
        for r in doomed:
            remove_tree(str(self.snapshots.dir / str(r["id"])))
        for orphan in self.snapshots.orphan_dirs():
            remove_tree(str(orphan))
        return len(doomed)

    def close(self) -> None:
        self.db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
