"""Blob uploads in progress: bytes streamed to a file and hashed as they arrive.

An upload is a directory uploads/<id>/ with `data` (the bytes so far) and `repo` (the repository it belongs
to). The running hash lives in memory; after a restart it is recomputed from `data`, so an upload can resume
across restarts of the server. A chunk that fails half-way (bad length, client gone) is rolled back to the
offset before it, so the hash and the file always agree with the offset reported to the client.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

from dockyard.fsutil import remove_tree
from dockyard.linux import EarlyWriteback
from dockyard.registry.server.errors import RegistryError

READ_CHUNK = 1 << 20


class Upload:
    def __init__(self, upload_id: str, repo: str, directory: Path, offset: int, hasher: Any) -> None:
        self.id = upload_id
        self.repo = repo
        self.dir = directory
        self.data_path = directory / "data"
        self.offset = offset
        self.hasher = hasher
        self.touched = time.time()
        # One request at a time may append: chunks must arrive in order.
        self.lock = asyncio.Lock()
        self._fd: int | None = None
        self._writeback: EarlyWriteback | None = None  # so that the fsync at the end waits for little
        self._saved: tuple[int, Any] | None = None

    # --- appending a chunk ---------------------------------------------------------------------------------------

    def begin_chunk(self) -> None:
        self._saved = (self.offset, self.hasher.copy())
        self._fd = os.open(self.data_path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        self._writeback = EarlyWriteback(self._fd, self.offset)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.hasher.update(data)
        self.offset += len(data)
        assert self._writeback is not None
        self._writeback.wrote(self.offset)

    def end_chunk(self, ok: bool) -> None:
        """Close the chunk; a failed one is cut off so file, hash and offset agree again."""
        assert self._fd is not None and self._saved is not None
        if not ok:
            self.offset, self.hasher = self._saved
            os.ftruncate(self._fd, self.offset)
        os.close(self._fd)
        self._fd = None
        self._saved = None
        self.touched = time.time()

    def keep_partial(self) -> None:
        """The client went away mid-chunk: keep what arrived (a resumable push continues from there)."""
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        self._saved = None
        self.touched = time.time()

    def sync(self) -> None:
        fd = os.open(self.data_path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


class Uploads:
    """The upload sessions of one registry root."""

    def __init__(self, root: Path, ttl: float = 24 * 3600) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl = ttl
        self._sessions: dict[str, Upload] = {}
        self._last_sweep = 0.0

    def start(self, repo: str) -> Upload:
        self._sweep_stale()
        upload_id = str(uuid.uuid4())
        directory = self.root / upload_id
        directory.mkdir()
        (directory / "repo").write_text(repo)
        (directory / "data").touch()
        upload = Upload(upload_id, repo, directory, 0, hashlib.sha256())
        self._sessions[upload_id] = upload
        return upload

    def get(self, repo: str, upload_id: str) -> Upload:
        upload = self._sessions.get(upload_id) or self._load(upload_id)
        if upload is None or upload.repo != repo:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": upload_id})
        return upload

    def _load(self, upload_id: str) -> Upload | None:
        """Pick up an upload that a previous run of the server started."""
        try:
            uuid.UUID(upload_id)
        except ValueError:
            return None
        directory = self.root / upload_id
        try:
            repo = (directory / "repo").read_text()
            hasher = hashlib.sha256()
            size = 0
            with open(directory / "data", "rb") as f:
                while chunk := f.read(READ_CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
        except (FileNotFoundError, NotADirectoryError):
            return None
        upload = Upload(upload_id, repo, directory, size, hasher)
        self._sessions[upload_id] = upload
        return upload

    def discard(self, upload: Upload) -> None:
        self._sessions.pop(upload.id, None)
        remove_tree(str(upload.dir))

    def _sweep_stale(self) -> None:
        """Drop uploads nobody touched for `ttl` seconds; at most once a minute."""
        now = time.time()
        if now - self._last_sweep < 60:
            return
        self._last_sweep = now
        for upload in list(self._sessions.values()):
            if now - upload.touched > self.ttl and not upload.lock.locked():
                self.discard(upload)
        remove_stale_uploads(self.root, self.ttl, keep=set(self._sessions))


def remove_stale_uploads(root: Path, ttl: float, keep: set[str] = frozenset()) -> int:  # type: ignore[assignment]
    """Remove upload directories whose data was not written for `ttl` seconds. Returns how many."""
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name in keep:
            continue
        try:
            mtime = os.stat(os.path.join(entry.path, "data")).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            mtime = entry.stat(follow_symlinks=False).st_mtime
        if now - mtime > ttl:
            remove_tree(entry.path)
            removed += 1
    return removed


def check_content_range(header: str, offset: int) -> tuple[int, int]:
    """Parse a PATCH Content-Range ('<start>-<end>', inclusive, optionally 'bytes ' or 'bytes='-prefixed).

    The chunk must start where the upload stands; anything else is 416 with the current Range.
    """
    text = header.strip()
    for prefix in ("bytes=", "bytes "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    start_s, dash, end_s = text.partition("-")
    end_s = end_s.split("/", 1)[0]
    if not dash or not start_s.isdigit() or not end_s.isdigit() or int(end_s) < int(start_s):
        raise RegistryError("BLOB_UPLOAD_INVALID", f"malformed Content-Range {header!r}", status=416)
    start, end = int(start_s), int(end_s)
    if start != offset:
        raise RegistryError("BLOB_UPLOAD_INVALID", f"chunk starts at {start}, but the upload is at {offset}",
                            status=416)
    return start, end
