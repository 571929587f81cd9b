"""Volumes: directories under <root>/volumes/<name>/_data that outlive the containers using them.

A new volume is filled from the image's content at its mount point the first time a container starts with
it (Docker's copy-up), so `-v data:/var/lib/app` starts with what the image had there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from dockyard.errors import Conflict, HostError, InvalidArgument, NotFound
from dockyard.fsutil import remove_tree
from dockyard.label_filters import labels_match
from dockyard.store.metadata import Database
from dockyard.timeutil import rfc3339

VALID_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
LOCAL_DRIVER_OPTIONS = ("type", "device", "o", "size")


class VolumeService:
    def __init__(self, root, db: Database) -> None:
        self.dir = os.path.join(str(root), "volumes")
        self.db = db
        self.in_use = lambda name: []  # (container id, ...) using a volume; set by the container service

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name, "_data")

    def _view(self, row) -> dict:
        data = json.loads(row["data"])
        return {"CreatedAt": row["created"], "Driver": row["driver"], "Labels": data.get("Labels") or {},
                "Mountpoint": self.path(row["name"]), "Name": row["name"], "Options": data.get("Options") or {},
                "Scope": "local"}

    def find(self, name: str) -> dict | None:
        rows = self.db.query("SELECT * FROM volumes WHERE name = ?", (name,))
        return self._view(rows[0]) if rows else None

    def get(self, name: str) -> dict:
        volume = self.find(name)
        if volume is None:
            raise NotFound(f"get {name}: no such volume")
        return volume

    def all(self) -> list[dict]:
        return [self._view(r) for r in self.db.query("SELECT * FROM volumes ORDER BY name")]

    def is_anonymous(self, name: str) -> bool:
        rows = self.db.query("SELECT anonymous FROM volumes WHERE name = ?", (name,))
        return bool(rows and rows[0][0])

    def create(self, name: str | None = None, driver: str = "local", labels: dict | None = None,
               options: dict | None = None) -> dict:
        """Create a volume (a random name makes it anonymous); an existing one of that name is returned."""
        anonymous = name is None
        name = name or os.urandom(32).hex()
        if not VALID_NAME.fullmatch(name):
            raise InvalidArgument(f'create {name}: "{name}" includes invalid characters for a local volume name, '
                                  f"only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed. If you intended to pass a host "
                                  f"directory, use absolute path")
        if driver != "local":
            raise NotFound(f'create {name}: error looking up volume plugin {driver}: plugin "{driver}" not found')
        for key in options or {}:
            if key not in LOCAL_DRIVER_OPTIONS:
                raise InvalidArgument(f'create {name}: invalid option: "{key}"')
        if options:
            # Docker's local driver mounts type/device/o when the volume is first used; that is not built yet,
            # and accepting options that would be silently ignored would lose the user's data elsewhere.
            raise InvalidArgument(f"create {name}: local volume options ({', '.join(sorted(options))}) are not "
                                  f"supported yet")
        existing = self.find(name)
        if existing is not None:
            return existing
        os.makedirs(self.path(name), mode=0o755, exist_ok=True)
        data = {"Labels": labels or {}, "Options": options or {}, "Populated": False}
        with self.db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO volumes (name, driver, created, anonymous, data) VALUES (?, ?, ?, ?, ?)",
                         (name, driver, rfc3339().split(".")[0] + "Z", int(anonymous), json.dumps(data)))
        return self.get(name)

    def populate(self, name: str, source: str) -> None:
        """Copy the image's content at the mount point into a volume that has never been used.

        `source` must already be resolved safely inside the container's rootfs (a /proc fd path).
        """
        rows = self.db.query("SELECT data FROM volumes WHERE name = ?", (name,))
        if not rows:
            return
        data = json.loads(rows[0][0])
        if data.get("Populated"):
            return
        target = self.path(name)
        if os.path.isdir(source) and not os.listdir(target):
            result = subprocess.run(["cp", "-a", "--", source + "/.", target], capture_output=True, text=True)
            if result.returncode != 0:
                raise HostError(f"copying image content into volume {name}: {result.stderr.strip()}")
        data["Populated"] = True
        with self.db.write() as conn:
            conn.execute("UPDATE volumes SET data = ? WHERE name = ?", (json.dumps(data), name))

    def remove(self, name: str, force: bool = False) -> None:
        self.get(name)
        users = self.in_use(name)
        if users:
            raise Conflict(f"remove {name}: volume is in use - [{', '.join(users)}]")
        with self.db.write() as conn:
            conn.execute("DELETE FROM volumes WHERE name = ?", (name,))
        remove_tree(os.path.join(self.dir, name))

    def prune(self, all_volumes: bool = False, label_filters: list[str] | None = None,
              not_label_filters: list[str] | None = None) -> tuple[list[str], int]:
        """Remove unused volumes (anonymous ones only, unless all_volumes); returns (names, bytes).

        `label_filters` must all hold (`key` or `key=value`), `not_label_filters` none of them.
        """
        from dockyard.fsutil import tree_size

        removed, reclaimed = [], 0
        for row in self.db.query("SELECT name, anonymous, data FROM volumes"):
            if not (row["anonymous"] or all_volumes) or self.in_use(row["name"]):
                continue
            labels = json.loads(row["data"]).get("Labels") or {}
            if not labels_match(labels, label_filters or (), not_label_filters or ()):
                continue
            size = tree_size(self.path(row["name"]))
            try:
                self.remove(row["name"])
            except (Conflict, NotFound):
                continue  # taken into use or removed meanwhile
            reclaimed += size
            removed.append(row["name"])
        return removed, reclaimed
