"""Network records in the metadata database: one row per network, its inspect document (without Containers,
which is derived from the containers' records) as JSON."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from dockyard.errors import Conflict, NotFound
from dockyard.store.metadata import Database

PREDEFINED = ("bridge", "host", "none")


class NetworkRecord:
    """A network as stored: `data` holds Docker's inspect fields (Driver, IPAM, Options, Labels...)."""

    __slots__ = ("created", "data", "id", "name")

    def __init__(self, id: str, name: str, created: float, data: dict[str, Any]) -> None:
        self.id, self.name, self.created, self.data = id, name, created, data

    @property
    def driver(self) -> str:
        return self.data["Driver"]

    @property
    def is_bridge(self) -> bool:
        return self.data["Driver"] == "bridge"

    @property
    def is_default_bridge(self) -> bool:
        return self.name == "bridge"

    @property
    def internal(self) -> bool:
        return bool(self.data.get("Internal"))

    @property
    def interface(self) -> str:
        return (self.data.get("Options") or {}).get("com.docker.network.bridge.name", "")

    @property
    def subnet(self) -> str | None:
        config = (self.data.get("IPAM") or {}).get("Config") or []
        return config[0].get("Subnet") if config else None

    @property
    def gateway(self) -> str | None:
        config = (self.data.get("IPAM") or {}).get("Config") or []
        return config[0].get("Gateway") if config else None

    @property
    def ip_range(self) -> str | None:
        config = (self.data.get("IPAM") or {}).get("Config") or []
        return config[0].get("IPRange") if config else None

    @property
    def auto_subnet(self) -> bool:
        """Chosen by us rather than the user: may move when the host has taken it meanwhile."""
        return bool((self.data.get("Dockyard") or {}).get("AutoSubnet"))


def _record(row: sqlite3.Row) -> NetworkRecord:
    return NetworkRecord(row["id"], row["name"], row["created"], json.loads(row["data"]))


class NetworkStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def lookup(self, name_or_id: str) -> NetworkRecord | None:
        """By full id, then name, then unique id prefix (Docker's order)."""
        rows = self.db.query("SELECT * FROM networks WHERE id = ? OR name = ?", (name_or_id, name_or_id))
        if rows:
            return _record(next((r for r in rows if r["id"] == name_or_id), rows[0]))
        if name_or_id and all(c in "0123456789abcdef" for c in name_or_id):
            rows = self.db.query("SELECT * FROM networks WHERE id >= ? AND id < ? LIMIT 2",
                                 (name_or_id, name_or_id + "g"))
            if len(rows) > 1:
                raise Conflict(f"network {name_or_id} is ambiguous ({len(rows)} matches found based on ID "
                               f"prefix)")
            if rows:
                return _record(rows[0])
        return None

    def get(self, name_or_id: str) -> NetworkRecord:
        record = self.lookup(name_or_id)
        if record is None:
            raise NotFound(f"network {name_or_id} not found")
        return record

    def all(self) -> list[NetworkRecord]:
        return [_record(r) for r in self.db.query("SELECT * FROM networks ORDER BY created")]

    def add(self, record: NetworkRecord) -> None:
        with self.db.write() as conn:
            if conn.execute("SELECT id FROM networks WHERE name = ?", (record.name,)).fetchone():
                raise Conflict(f"network with name {record.name} already exists")
            conn.execute("INSERT INTO networks (id, name, created, data) VALUES (?, ?, ?, ?)",
                         (record.id, record.name, record.created, json.dumps(record.data)))

    def add_missing(self, records: list[NetworkRecord]) -> None:
        """Insert records whose name is free (the predefined networks, made by whichever process is first)."""
        with self.db.write() as conn:
            for record in records:
                conn.execute("INSERT OR IGNORE INTO networks (id, name, created, data) VALUES (?, ?, ?, ?)",
                             (record.id, record.name, record.created, json.dumps(record.data)))

    def update(self, network_id: str, change) -> NetworkRecord:
        with self.db.write() as conn:
            row = conn.execute("SELECT * FROM networks WHERE id = ?", (network_id,)).fetchone()
            if row is None:
                raise NotFound(f"network {network_id} not found")
            record = _record(row)
            change(record.data)
            conn.execute("UPDATE networks SET data = ? WHERE id = ?", (json.dumps(record.data), network_id))
        return record

    def delete(self, network_id: str) -> None:
        with self.db.write() as conn:
            conn.execute("DELETE FROM networks WHERE id = ?", (network_id,))
