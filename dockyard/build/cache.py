"""The build cache: which layer a step made, keyed by the layer it ran on and everything it read.

A record's key is sha256 over the parent layer chain and the step's inputs: for RUN the command, the
environment (ENV and ARG values), user, working directory, shell, network and mounts (with the content of
bind sources); for COPY/ADD the content digest of the sources (names, types, modes, owners, data) with the
destination and flags. Keying on the parent's *result* (its chain id), not on the instructions before it,
means a rebuilt step that yields the same layer keeps the rest of the cache, and a record can never be
reused on top of a layer it was not built on.

Records live in the metadata database (table `build_cache`); each keeps its layer's blob and snapshot alive
against garbage collection until `builder prune` removes it. A record with no diff id says the step changed
nothing (no layer). `kind = 'image'` rows remember the creation time of a built image, so that a fully
cached rebuild gives the same image id.

To explain misses, each record also stores its inputs (JSON) and a `slot`: sha256 of the parent chain and
the instruction as written. A later miss with the same slot ran the same instruction on the same layer, so
comparing inputs says what changed; COPY/ADD records keep per-file digests for that (`build_cache_files`).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import zlib
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from dockyard.store.metadata import Database

KEY_VERSION = "dockyard-build-cache-v1"


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def step_key(parent_chain: str, inputs: dict[str, Any]) -> str:
    data = f"{KEY_VERSION}\0{parent_chain}\0{canonical(inputs)}"
    return "sha256:" + hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


def slot_key(parent_chain: str, instruction: str) -> str:
    data = f"{KEY_VERSION}\0slot\0{parent_chain}\0{instruction}"
    return "sha256:" + hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class CacheRecord:
    key: str
    slot: str
    parent: str
    diff_id: str | None
    blob: str | None
    size: int
    media_type: str | None
    chain_id: str | None
    created: str
    description: str
    inputs: dict[str, Any]
    last_used: float = 0.0


class BuildCache:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- steps
    def get(self, key: str) -> CacheRecord | None:
        rows = self.db.query("SELECT * FROM build_cache WHERE key = ? AND kind = 'layer'", (key,))
        return _record(rows[0]) if rows else None

    def touch(self, keys: list[str]) -> None:
        if keys:
            with self.db.write() as conn:
                conn.executemany("UPDATE build_cache SET last_used = ? WHERE key = ?",
                                 [(time.time(), k) for k in keys])

    def put(self, record: CacheRecord, files: list[tuple[str, str]] | None = None) -> None:
        """Store (or replace) a record; `files` are (path, digest) pairs of a COPY's sources."""
        with self.db.write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO build_cache (key, kind, slot, parent, diff_id, blob, size, media_type, "
                "chain_id, created, last_used, description, inputs) VALUES (?, 'layer', ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?)",
                (record.key, record.slot, record.parent, record.diff_id, record.blob, record.size,
                 record.media_type, record.chain_id, record.created, time.time(), record.description,
                 canonical(record.inputs)))
            conn.execute("DELETE FROM build_cache_files WHERE key = ?", (record.key,))
            if files is not None:
                conn.execute("INSERT INTO build_cache_files (key, data) VALUES (?, ?)",
                             (record.key, pack_files(files)))

    def previous_in_slot(self, slot: str) -> CacheRecord | None:
        """The latest record of the same instruction on the same parent layer."""
        rows = self.db.query("SELECT * FROM build_cache WHERE slot = ? AND kind = 'layer' "
                             "ORDER BY last_used DESC LIMIT 1", (slot,))
        return _record(rows[0]) if rows else None

    def previous_with_description(self, description: str) -> CacheRecord | None:
        rows = self.db.query("SELECT * FROM build_cache WHERE description = ? AND kind = 'layer' "
                             "ORDER BY last_used DESC LIMIT 1", (description,))
        return _record(rows[0]) if rows else None

    def files_of(self, key: str) -> dict[str, str] | None:
        rows = self.db.query("SELECT data FROM build_cache_files WHERE key = ?", (key,))
        return unpack_files(rows[0][0]) if rows else None

    # -- images
    def image_created(self, key: str, default: str) -> str:
        """The creation time recorded for an image config (sans times) built before, else `default`,
        which is then recorded."""
        rows = self.db.query("SELECT created FROM build_cache WHERE key = ? AND kind = 'image'", (key,))
        if rows:
            self.touch([key])
            return rows[0][0]
        with self.db.write() as conn:
            conn.execute("INSERT OR IGNORE INTO build_cache (key, kind, created, last_used, description, inputs) "
                         "VALUES (?, 'image', ?, ?, 'image', '{}')", (key, default, time.time()))
        return default

    # -- pruning
    def entries(self) -> list[tuple[str, str, int, float, str | None]]:
        """(key, kind, size, last_used, chain id) of every record."""
        return [(r["key"], r["kind"], r["size"], r["last_used"], r["chain_id"])
                for r in self.db.query("SELECT key, kind, size, last_used, chain_id FROM build_cache")]

    def delete(self, keys: list[str]) -> None:
        with self.db.write() as conn:
            conn.executemany("DELETE FROM build_cache WHERE key = ?", [(k,) for k in keys])
            conn.executemany("DELETE FROM build_cache_files WHERE key = ?", [(k,) for k in keys])


def _record(row: Any) -> CacheRecord:
    return CacheRecord(row["key"], row["slot"], row["parent"], row["diff_id"], row["blob"], row["size"],
                       row["media_type"], row["chain_id"], row["created"], row["description"],
                       json.loads(row["inputs"]), row["last_used"])


def pack_files(files: list[tuple[str, str]]) -> bytes:
    text = json.dumps(files, separators=(",", ":"), ensure_ascii=True)  # any file name survives
    return zlib.compress(text.encode(), 3)


def unpack_files(data: bytes) -> dict[str, str]:
    try:
        return {path: digest for path, digest in json.loads(zlib.decompress(data))}
    except (ValueError, TypeError, zlib.error):
        return {}


# -- content digests of context files, kept across builds -----------------------------------------------------

DigestKey = tuple[int, int, int, int, int]
MAX_KEPT = 200_000
_MAGIC = b"dockyard-digests-1\n"
_KEY = struct.Struct("<QQqqq")  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns
_RECORD = _KEY.size + 32  # + the sha256


class DigestMemo(MutableMapping[DigestKey, str]):
    """The DigestCache `hashing` takes (device, inode, size, mtime, ctime -> sha256 hex), loaded from and
    saved to a file under the root, so an unchanged context is never read again. The file is fixed-size
    records (no pickle: loading it runs no code); entries a build did not use are dropped once it holds more
    than MAX_KEPT."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._data: dict[bytes, bytes] = {}
        self._used: set[bytes] = set()
        self._dirty = False
        try:
            with open(path, "rb") as f:
                blob = f.read()
        except OSError:
            return
        if blob.startswith(_MAGIC) and (len(blob) - len(_MAGIC)) % _RECORD == 0:
            n, k = len(_MAGIC), _KEY.size
            self._data = {blob[i:i + k]: blob[i + k:i + _RECORD] for i in range(n, len(blob), _RECORD)}

    @staticmethod
    def _key(key: DigestKey) -> bytes:
        return _KEY.pack(*key)

    def __getitem__(self, key: DigestKey) -> str:
        packed = self._key(key)
        value = self._data[packed]
        self._used.add(packed)
        return value.hex()

    def __contains__(self, key: object) -> bool:
        try:
            return self._key(key) in self._data  # type: ignore[arg-type]
        except (TypeError, struct.error):
            return False

    def __setitem__(self, key: DigestKey, value: str) -> None:
        packed = self._key(key)
        self._data[packed] = bytes.fromhex(value)
        self._used.add(packed)
        self._dirty = True

    def __delitem__(self, key: DigestKey) -> None:
        del self._data[self._key(key)]
        self._dirty = True

    def __iter__(self) -> Iterator[DigestKey]:
        return (_KEY.unpack(k) for k in self._data)  # type: ignore[misc]

    def __len__(self) -> int:
        return len(self._data)

    def save(self) -> None:
        if not self._dirty:
            return
        data = self._data
        if len(data) > MAX_KEPT:
            data = {k: v for k, v in data.items() if k in self._used}
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(_MAGIC + b"".join(k + v for k, v in data.items()))
            os.rename(tmp, self.path)  # a lost update only costs re-reading some files
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
