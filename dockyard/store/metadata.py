"""The metadata database (SQLite): images, tags, snapshots and leases.

SQLite in WAL mode lets any number of dockyard processes share one root: readers never block, writers take
`BEGIN IMMEDIATE` and wait (busy timeout) for each other. Schema changes are versioned with `user_version`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

# Each entry upgrades the schema by one version; append, never edit a released one.
MIGRATIONS: list[str] = ["""
CREATE TABLE images (
    id              TEXT PRIMARY KEY,      -- config digest: the image id
    manifest_digest TEXT NOT NULL,         -- the manifest used to save, push and run it
    chain_id        TEXT,                  -- chain id of its top layer, NULL for an image without layers
    size            INTEGER NOT NULL,      -- uncompressed size of all its layers
    created         TEXT,                  -- from the config
    parent          TEXT,                  -- the local image it was built on, if any
    added           REAL NOT NULL,         -- when it was stored here
    last_tag_time   TEXT
);
CREATE TABLE tags (
    name     TEXT PRIMARY KEY,             -- full reference: docker.io/library/busybox:latest
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX tags_image ON tags(image_id);
CREATE TABLE repo_digests (
    name     TEXT PRIMARY KEY,             -- docker.io/library/busybox@sha256:...
    image_id TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX repo_digests_image ON repo_digests(image_id);
CREATE TABLE image_blobs (                 -- every blob an image needs: manifests, config, layers
    image_id TEXT NOT NULL REFERENCES images(id),
    digest   TEXT NOT NULL,
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX image_blobs_digest ON image_blobs(digest);
CREATE TABLE snapshots (
    id      INTEGER PRIMARY KEY AUTOINCREMENT, -- names its directory: snapshots/<id>
    key     TEXT NOT NULL UNIQUE,          -- chain id for a committed layer; a free name for an active one
    parent  TEXT,                          -- key of the parent snapshot
    kind    TEXT NOT NULL,                 -- 'committed' or 'active'
    size    INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE INDEX snapshots_parent ON snapshots(parent);
CREATE TABLE leases (                      -- work in progress: protects what it made from garbage collection
    id         TEXT PRIMARY KEY,
    pid        INTEGER NOT NULL,
    start_time INTEGER NOT NULL,           -- of that pid, so a reused pid is not taken for the owner
    created    REAL NOT NULL
);
CREATE TABLE lease_items (
    lease TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
    kind  TEXT NOT NULL,                   -- 'blob' or 'snapshot'
    key   TEXT NOT NULL,
    PRIMARY KEY (lease, kind, key)
);
CREATE INDEX lease_items_key ON lease_items(kind, key);
""", """
CREATE TABLE containers (
    id       TEXT PRIMARY KEY,             -- 64 hex
    name     TEXT NOT NULL UNIQUE,         -- without Docker's leading '/'
    image_id TEXT NOT NULL,                -- the image it was created from (keeps that image alive)
    created  REAL NOT NULL,
    data     TEXT NOT NULL                 -- JSON: Config, HostConfig, State... as `inspect` shows them
);
CREATE INDEX containers_image ON containers(image_id);
CREATE TABLE volumes (
    name      TEXT PRIMARY KEY,
    driver    TEXT NOT NULL,
    created   TEXT NOT NULL,
    anonymous INTEGER NOT NULL DEFAULT 0,
    data      TEXT NOT NULL                -- JSON: Labels, Options
);
""", """
CREATE TABLE build_cache (                 -- what a build step made, to reuse it (see dockyard.build.cache)
    key         TEXT PRIMARY KEY,          -- sha256 of the step: its parent layer chain and its inputs
    kind        TEXT NOT NULL,             -- 'layer' (a step's result) or 'image' (an image's creation time)
    slot        TEXT,                      -- sha256 of (parent chain, instruction as written): explains misses
    parent      TEXT,                      -- chain id the step ran on ('' for none)
    diff_id     TEXT,                      -- the layer it made; NULL when it changed nothing
    blob        TEXT,                      -- the layer's blob (kept alive by this row)
    size        INTEGER NOT NULL DEFAULT 0,
    media_type  TEXT,
    chain_id    TEXT,                      -- parent chain + this layer: the snapshot this row keeps alive
    created     TEXT NOT NULL,             -- history 'created' of the step (RFC 3339)
    last_used   REAL NOT NULL,
    description TEXT NOT NULL,             -- the instruction, for listings and explanations
    inputs      TEXT NOT NULL              -- JSON: the step's inputs, compared when a later build misses
);
CREATE INDEX build_cache_slot ON build_cache(slot);
CREATE INDEX build_cache_description ON build_cache(description);
CREATE TABLE build_cache_files (           -- per-file digests of a COPY/ADD step's sources (zlib'd lines)
    key  TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
""", """
CREATE TABLE networks (
    id       TEXT PRIMARY KEY,             -- 64 hex
    name     TEXT NOT NULL UNIQUE,
    created  REAL NOT NULL,
    data     TEXT NOT NULL                 -- JSON: Driver, IPAM, Options, Labels... as `inspect` shows them
);
""", """
CREATE TABLE layer_gzips (                 -- gzip blobs made from uncompressed layer blobs, to push them
    digest TEXT PRIMARY KEY,               -- the uncompressed layer blob
    gzip   TEXT NOT NULL,                  -- its gzip blob (kept by the image_blobs of the images pushed)
    size   INTEGER NOT NULL
);
"""]
SCHEMA_VERSION = len(MIGRATIONS)


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (comments removed first: they may contain ';')."""
    code = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [statement for statement in code.split(";") if statement.strip()]


class Database:
    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.conn = sqlite3.connect(path, timeout=60, isolation_level=None, check_same_thread=False)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA busy_timeout = 60000")
        self.conn.execute("PRAGMA foreign_keys = ON")
        # WAL with synchronous=NORMAL: a commit survives any process crash without an fsync of its own; only
        # a power cut can lose the last few commits, and never corrupts the database.
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self._migrate()

    def _migrate(self) -> None:
        # A newer dockyard's database (a higher version) is left alone: never downgrade the version, or the
        # newer code would run its migrations again.
        if self.conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        self.conn.execute("PRAGMA journal_mode = WAL")
        with self.write():
            version = self.conn.execute("PRAGMA user_version").fetchone()[0]
            if version >= SCHEMA_VERSION:
                return
            for script in MIGRATIONS[version:]:
                for statement in _statements(script):
                    self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; waits for other writers, commits on success, rolls back on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read snapshot across several queries."""
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        self.conn.close()
