"""Container records in the metadata database: one row per container, its inspect document as JSON."""

from __future__ import annotations

import sqlite3

from dockyard.errors import Conflict, NotFound
from dockyard.jsonread import loads
from dockyard.store.metadata import Database


class ContainerRecord:
    """A container as stored: `data` holds Docker's inspect fields (Config, HostConfig, State, ...)."""

    __slots__ = ("id", "name", "image_id", "created", "data")

    def __init__(self, id: str, name: str, image_id: str, created: float, data: dict) -> None:
        self.id, self.name, self.image_id, self.created, self.data = id, name, image_id, created, data

    @property
    def state(self) -> dict:
        return self.data["State"]

    @property
    def running(self) -> bool:
        return bool(self.state.get("Running"))

    @property
    def short_id(self) -> str:
        return self.id[:12]


def _record(row: sqlite3.Row) -> ContainerRecord:
    return ContainerRecord(row["id"], row["name"], row["image_id"], row["created"], loads(row["data"]))


def _dumps(data: dict) -> str:
    import json  # only writers pay for it (see dockyard.jsonread)

    return json.dumps(data)


def name_conflict(name: str, owner: str) -> Conflict:
    return Conflict(f'Conflict. The container name "/{name}" is already in use by container "{owner}". '
                    f"You have to remove (or rename) that container to be able to reuse that name.")


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def lookup(self, name_or_id: str) -> ContainerRecord | None:
        """By full id, then name (with or without '/'), then unique id prefix: Docker's order."""
        key = name_or_id.lstrip("/")
        rows = self.db.query("SELECT * FROM containers WHERE id = ? OR name = ?", (key, key))
        if rows:
            return _record(next((r for r in rows if r["id"] == key), rows[0]))
        if key and all(c in "0123456789abcdef" for c in key):
            rows = self.db.query("SELECT * FROM containers WHERE id >= ? AND id < ? LIMIT 2", (key, key + "g"))
            if len(rows) > 1:
                raise Conflict(f"multiple containers match the id prefix {key!r}: use more of the id")
            if rows:
                return _record(rows[0])
        return None

    def get(self, name_or_id: str) -> ContainerRecord:
        record = self.lookup(name_or_id)
        if record is None:
            raise NotFound(f"No such container: {name_or_id}")
        return record

    def all(self) -> list[ContainerRecord]:
        return [_record(r) for r in self.db.query("SELECT * FROM containers ORDER BY created DESC")]

    def add(self, record: ContainerRecord) -> None:
        with self.db.write() as conn:
            row = conn.execute("SELECT id FROM containers WHERE name = ?", (record.name,)).fetchone()
            if row:
                raise name_conflict(record.name, row[0])
            conn.execute("INSERT INTO containers (id, name, image_id, created, data) VALUES (?, ?, ?, ?, ?)",
                         (record.id, record.name, record.image_id, record.created, _dumps(record.data)))

    def update(self, container_id: str, change) -> ContainerRecord:
        """Read, change (a function of the data dict) and write back, in one transaction."""
        with self.db.write() as conn:
            row = conn.execute("SELECT * FROM containers WHERE id = ?", (container_id,)).fetchone()
            if row is None:
                raise NotFound(f"No such container: {container_id}")
            record = _record(row)
            change(record.data)
            conn.execute("UPDATE containers SET data = ? WHERE id = ?", (_dumps(record.data), container_id))
        return record

    def rename(self, container_id: str, new_name: str) -> None:
        with self.db.write() as conn:
            row = conn.execute("SELECT id FROM containers WHERE name = ?", (new_name,)).fetchone()
            if row and row[0] != container_id:
                raise name_conflict(new_name, row[0])
            data = loads(conn.execute("SELECT data FROM containers WHERE id = ?", (container_id,))
                              .fetchone()[0])
            data["Name"] = "/" + new_name
            conn.execute("UPDATE containers SET name = ?, data = ? WHERE id = ?",
                         (new_name, _dumps(data), container_id))

    def delete(self, container_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM containers WHERE id = ?", (container_id,))

    def users_of_image(self, image_id: str) -> list[tuple[str, bool]]:
        return [(r["id"], bool(loads(r["data"])["State"].get("Running")))
                for r in self.db.query("SELECT id, data FROM containers WHERE image_id = ?", (image_id,))]
