"""Snapshots: layer trees stacked read-only, and writable trees for containers and builds.

Two drivers share one interface:

* overlay: a committed snapshot's directory holds only its layer's diff (whiteouts in overlay form); an
  active snapshot is an overlay mount of its parents' directories under a fresh upper directory, so its
  changes are exactly that upper directory.
* vfs (plain copy, for file systems without overlay support): every snapshot is a full copy of its parent
  plus its own changes, bind-mounted for use; changes are found by comparing with the parent.

Rows live in the `snapshots` table; directories are snapshots/<id>/{fs,work}. A row is always written before
its directory is made, so a directory without a row is garbage from a killed process.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from dockyard import linux
from dockyard.errors import Conflict, HostError, NotFound
from dockyard.fsutil import remove_tree, tree_size
from dockyard.store.metadata import Database

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from dockyard.image.layer_apply import ApplyOptions
    from dockyard.image.layer_create import Change

OVERLAY = "overlay"
VFS = "vfs"
MAX_MOUNT_DATA = 4000  # the kernel takes one page of mount options


class Snapshot:
    __slots__ = ("id", "key", "parent", "kind", "size")

    def __init__(self, id: int, key: str, parent: str | None, kind: str, size: int) -> None:
        self.id, self.key, self.parent, self.size = id, key, parent, size
        self.kind = kind  # 'committed' | 'active'


def detect_driver(root: Path) -> str:
    """overlay if this file system can hold overlay upper directories, else vfs."""
    forced = os.environ.get("DOCKYARD_STORAGE_DRIVER")
    if forced in (OVERLAY, VFS):
        return forced
    probe = root / "tmp" / f"overlay-probe-{os.urandom(4).hex()}"
    dirs = [probe / d for d in ("lower", "upper", "work", "merged")]
    try:
        for d in dirs:
            d.mkdir(parents=True)
        linux.mount("overlay", str(dirs[3]), "overlay", 0,
                    f"lowerdir={dirs[0]},upperdir={dirs[1]},workdir={dirs[2]}")
        linux.umount(str(dirs[3]))
        return OVERLAY
    except OSError:
        return VFS
    finally:
        remove_tree(str(probe))


class Snapshotter:
    def __init__(self, root: Path, db: Database, driver: str) -> None:
        self.dir = root / "snapshots"
        self.dir.mkdir(exist_ok=True)
        self.db = db
        self.driver = driver

    # --- lookups ----------------------------------------------------------------------------------------------

    @staticmethod
    def _row(row) -> Snapshot:
        return Snapshot(row["id"], row["key"], row["parent"], row["kind"], row["size"])

    def get(self, key: str) -> Snapshot:
        rows = self.db.query("SELECT * FROM snapshots WHERE key = ?", (key,))
        if not rows:
            raise NotFound(f"snapshot {key} not found")
        return self._row(rows[0])

    def find(self, key: str) -> Snapshot | None:
        rows = self.db.query("SELECT * FROM snapshots WHERE key = ?", (key,))
        return self._row(rows[0]) if rows else None

    def fs(self, snap: Snapshot) -> str:
        return str(self.dir / str(snap.id) / "fs")

    def chain(self, key: str | None) -> list[Snapshot]:
        """The snapshot and its ancestors, top first."""
        result = []
        while key is not None:
            snap = self.get(key)
            result.append(snap)
            key = snap.parent
        return result

    # --- creating ---------------------------------------------------------------------------------------------

    def _insert(self, key: str, parent: str | None, kind: str) -> Snapshot:
        with self.db.write() as conn:
            if conn.execute("SELECT 1 FROM snapshots WHERE key = ?", (key,)).fetchone():
                raise Conflict(f"snapshot {key} already exists")
            if parent is not None and not conn.execute("SELECT 1 FROM snapshots WHERE key = ? AND kind = 'committed'",
                                                       (parent,)).fetchone():
                raise NotFound(f"parent snapshot {parent} not found")
            cur = conn.execute("INSERT INTO snapshots (key, parent, kind, created) VALUES (?, ?, ?, ?)",
                               (key, parent, kind, time.time()))
            snap = Snapshot(cur.lastrowid, key, parent, kind, 0)  # type: ignore[arg-type]
        return snap

    def prepare(self, key: str, parent: str | None) -> Snapshot:
        """A new writable snapshot on top of `parent` (a committed snapshot's key, or None for empty)."""
        snap = self._insert(key, parent, "active")
        base = self.dir / str(snap.id)
        try:
            base.mkdir()
            if self.driver == OVERLAY:
                os.mkdir(base / "fs", 0o755)
                os.mkdir(base / "work", 0o700)
            elif parent is not None:
                self._copy_tree(self.fs(self.get(parent)), str(base / "fs"))
            else:
                os.mkdir(base / "fs", 0o755)
        except BaseException:
            self._delete(snap)
            raise
        return snap

    @staticmethod
    def _copy_tree(source: str, target: str) -> None:
        import subprocess

        result = subprocess.run(["cp", "-a", "--reflink=auto", source, target], capture_output=True, text=True)
        if result.returncode != 0:
            raise HostError(f"copying snapshot {source} failed: {result.stderr.strip()}")

    def apply_options(self, snap: Snapshot) -> ApplyOptions:
        """How to apply a layer tar directly into `snap`'s directory (see layer_apply)."""
        from dockyard.image.layer_apply import ApplyOptions

        if self.driver == OVERLAY:
            lowers = [self.fs(s) for s in self.chain(snap.parent)]
            return ApplyOptions(overlay_whiteouts=True, lowers=lowers)
        return ApplyOptions(overlay_whiteouts=False)

    def commit(self, active_key: str, key: str, size: int | None = None) -> Snapshot:
        """Turn an active snapshot into the committed snapshot `key`.

        If `key` was committed meanwhile by someone else, the active one is removed and theirs returned.
        """
        snap = self.get(active_key)
        if size is None:
            size = tree_size(self.fs(snap))
        work = self.dir / str(snap.id) / "work"
        with self.db.write() as conn:
            existing = conn.execute("SELECT * FROM snapshots WHERE key = ?", (key,)).fetchone()
            if existing is None:
                conn.execute("UPDATE snapshots SET key = ?, kind = 'committed', size = ? WHERE id = ?",
                             (key, size, snap.id))
        if existing is not None:
            self.remove(active_key)
            return self._row(existing)
        remove_tree(str(work))
        return Snapshot(snap.id, key, snap.parent, "committed", size)

    # --- using ------------------------------------------------------------------------------------------------

    def mount_options(self, snap: Snapshot) -> tuple[str, str, int, str | None]:
        """(source, fstype, flags, data) to mount an active snapshot's tree."""
        if self.driver == VFS:
            return self.fs(snap), "none", linux.MS_BIND, None
        lowers = [self.fs(s) for s in self.chain(snap.parent)]
        base = self.dir / str(snap.id)
        if not lowers:
            empty = self.dir / "empty"
            empty.mkdir(exist_ok=True)
            lowers = [str(empty)]
        data = f"lowerdir={':'.join(lowers)},upperdir={base / 'fs'},workdir={base / 'work'}"
        data += ",index=off,redirect_dir=off,metacopy=off"
        if len(data) > MAX_MOUNT_DATA:
            raise HostError(f"image has too many layers ({len(lowers)}) to mount from {self.dir}")
        return "overlay", "overlay", 0, data

    def mount(self, snap: Snapshot, target: str) -> None:
        source, fstype, flags, data = self.mount_options(snap)
        linux.mount(source, target, fstype, flags, data)

    def changes(self, snap: Snapshot) -> Iterator[Change]:
        """What an active snapshot changed relative to its parent."""
        from dockyard.image.layer_create import diff_trees, upper_changes

        if self.driver == OVERLAY:
            return upper_changes(self.fs(snap))
        parent = self.fs(self.get(snap.parent)) if snap.parent else None
        return diff_trees(parent, self.fs(snap))

    # --- removing ---------------------------------------------------------------------------------------------

    def remove(self, key: str) -> None:
        snap = self.get(key)
        with self.db.write() as conn:
            if conn.execute("SELECT 1 FROM snapshots WHERE parent = ?", (key,)).fetchone():
                raise Conflict(f"snapshot {key} has children")
        self._delete(snap)

    def _delete(self, snap: Snapshot) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM snapshots WHERE id = ?", (snap.id,))
        remove_tree(str(self.dir / str(snap.id)))

    def orphan_dirs(self) -> list[Path]:
        """Directories under snapshots/ with no row: left by a process killed between the two steps."""
        # List first, then read the rows: a row is written before its directory, so a directory made after
        # the listing cannot be mistaken for an orphan.
        found = [e for e in os.scandir(self.dir) if e.name.isdigit()]
        known = {str(row[0]) for row in self.db.query("SELECT id FROM snapshots")}
        return [Path(e.path) for e in found if e.name not in known]


def new_key(prefix: str) -> str:
    return f"{prefix}/{os.urandom(16).hex()}"
