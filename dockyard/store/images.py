"""Image records: which images exist, their tags and repo digests, and the blobs each one needs."""

from __future__ import annotations

import sqlite3

from dockyard.errors import Conflict, InvalidReference, NotFound
from dockyard.image import reference
from dockyard.store.metadata import Database
from dockyard.timeutil import rfc3339


class ImageRecord:
    """One stored image. (A plain class, not a dataclass: this module is on every command's start-up path.)"""

    __slots__ = ("id", "manifest_digest", "chain_id", "size", "created", "parent", "added", "last_tag_time")

    def __init__(self, id: str, manifest_digest: str, chain_id: str | None, size: int, created: str | None,
                 parent: str | None, added: float, last_tag_time: str | None) -> None:
        self.id = id  # sha256:<config hex>
        self.manifest_digest = manifest_digest
        self.chain_id = chain_id  # of the top layer
        self.size = size
        self.created = created
        self.parent = parent
        self.added = added
        self.last_tag_time = last_tag_time

    @property
    def short_id(self) -> str:
        return self.id[7:19]


def _record(row: sqlite3.Row) -> ImageRecord:
    return ImageRecord(row["id"], row["manifest_digest"], row["chain_id"], row["size"], row["created"],
                       row["parent"], row["added"], row["last_tag_time"])


class ImageStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reading ----------------------------------------------------------------------------------------------

    def get(self, image_id: str) -> ImageRecord:
        rows = self.db.query("SELECT * FROM images WHERE id = ?", (image_id,))
        if not rows:
            raise NotFound(f"No such image: {image_id}")
        return _record(rows[0])

    def find(self, image_id: str) -> ImageRecord | None:
        rows = self.db.query("SELECT * FROM images WHERE id = ?", (image_id,))
        return _record(rows[0]) if rows else None

    def resolve(self, name: str) -> ImageRecord:
        """An image by tag, digest reference, full id or unique id prefix, in Docker's order."""
        image = self.lookup(name)
        if image is None:
            raise NotFound(f"No such image: {name}")
        return image

    def lookup(self, name: str) -> ImageRecord | None:
        if name.startswith("sha256:"):
            return self._by_prefix(name[7:], name)
        try:
            ref = reference.parse(name)
        except InvalidReference:
            ref = None
        if ref is not None:
            if ref.digest is not None:
                rows = self.db.query("SELECT image_id FROM repo_digests WHERE name = ?",
                                     (f"{ref.repository}@{ref.digest}",))
                if rows:
                    return self.get(rows[0][0])
                # A digest reference may also name the image's own manifest.
                rows = self.db.query("SELECT * FROM images WHERE manifest_digest = ?", (ref.digest,))
                return _record(rows[0]) if rows else None
            rows = self.db.query("SELECT image_id FROM tags WHERE name = ?", (str(ref),))
            if rows:
                return self.get(rows[0][0])
        if reference.looks_like_id(name):
            return self._by_prefix(name, name)
        if ref is None:
            reference.parse(name)  # re-raise the grammar error: it says what is wrong with the name
        return None

    def _by_prefix(self, hex_prefix: str, name: str) -> ImageRecord | None:
        if not reference.looks_like_id(hex_prefix):
            raise InvalidReference(f"invalid image id {name!r}: must be hexadecimal")
        rows = self.db.query("SELECT * FROM images WHERE id >= ? AND id < ? LIMIT 2",
                             (f"sha256:{hex_prefix}", f"sha256:{hex_prefix}\x7f"))
        if len(rows) > 1:
            raise Conflict(f"image id prefix {name!r} is ambiguous: it matches more than one image")
        return _record(rows[0]) if rows else None

    def all(self) -> list[ImageRecord]:
        return [_record(r) for r in self.db.query("SELECT * FROM images ORDER BY added DESC, id")]

    def tags_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM tags WHERE image_id = ? ORDER BY name", (image_id,))]

    def repo_digests_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM repo_digests WHERE image_id = ? ORDER BY name",
                                            (image_id,))]

    def all_tags(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for row in self.db.query("SELECT name, image_id FROM tags ORDER BY name"):
            result.setdefault(row[1], []).append(row[0])
        return result

    def all_repo_digests(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for row in self.db.query("SELECT name, image_id FROM repo_digests ORDER BY name"):
            result.setdefault(row[1], []).append(row[0])
        return result

    def blobs_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.query("SELECT digest FROM image_blobs WHERE image_id = ?", (image_id,))]

    def children_of(self, image_id: str) -> list[str]:
        return [r[0] for r in self.db.query("SELECT id FROM images WHERE parent = ?", (image_id,))]

    # --- writing ----------------------------------------------------------------------------------------------

    def add(self, conn: sqlite3.Connection, record: ImageRecord, blobs: list[str]) -> None:
        """Record an image (inside the caller's write transaction); an existing one gains the new blobs."""
        conn.execute(
            "INSERT INTO images (id, manifest_digest, chain_id, size, created, parent, added, last_tag_time) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest",
            (record.id, record.manifest_digest, record.chain_id, record.size, record.created, record.parent,
             record.added, record.last_tag_time),
        )
        self.hold_blobs(conn, record.id, blobs)

    def hold_blobs(self, conn: sqlite3.Connection, image_id: str, blobs: list[str]) -> None:
        """The image keeps these blobs from garbage collection for as long as it exists."""
        conn.executemany("INSERT OR IGNORE INTO image_blobs (image_id, digest) VALUES (?, ?)",
                         [(image_id, d) for d in blobs])

    def set_tag(self, conn: sqlite3.Connection, ref: reference.Reference, image_id: str) -> str | None:
        """Point a tag at an image; return the image it pointed at before, if another."""
        name = str(ref)
        row = conn.execute("SELECT image_id FROM tags WHERE name = ?", (name,)).fetchone()
        conn.execute("INSERT OR REPLACE INTO tags (name, image_id) VALUES (?, ?)", (name, image_id))
        conn.execute("UPDATE images SET last_tag_time = ? WHERE id = ?", (rfc3339(), image_id))
        return row[0] if row and row[0] != image_id else None

    def add_repo_digest(self, conn: sqlite3.Connection, ref: reference.Reference, image_id: str) -> None:
        conn.execute("INSERT OR REPLACE INTO repo_digests (name, image_id) VALUES (?, ?)", (str(ref), image_id))

    def remove_tag(self, conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute("DELETE FROM tags WHERE name = ?", (name,)).rowcount > 0

    def remove_repo_digest(self, conn: sqlite3.Connection, name: str) -> bool:
        return conn.execute("DELETE FROM repo_digests WHERE name = ?", (name,)).rowcount > 0

    def delete(self, conn: sqlite3.Connection, image_id: str) -> None:
        conn.execute("DELETE FROM tags WHERE image_id = ?", (image_id,))
        conn.execute("DELETE FROM repo_digests WHERE image_id = ?", (image_id,))
        conn.execute("DELETE FROM image_blobs WHERE image_id = ?", (image_id,))
        conn.execute("UPDATE images SET parent = NULL WHERE parent = ?", (image_id,))
        conn.execute("DELETE FROM images WHERE id = ?", (image_id,))
