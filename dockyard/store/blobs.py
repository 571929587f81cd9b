"""Content-addressed blob store.

Blobs live at blobs/sha256/<hex> and are never rewritten. A blob is written to ingest/ first, hashed while it
streams, checked against the expected digest and size, fsynced and only then renamed into place, so a reader
never sees a partial or wrong blob. The `on_verified` hook of a writer runs after verification and before the
rename: the store uses it to record the blob in a lease, so garbage collection never removes a blob that a
running import has just written but not yet referenced.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

from dockyard.errors import CorruptContent, NotFound
from dockyard.image.reference import validate_digest
from dockyard.linux import EarlyWriteback

CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    import hashlib  # here: commands that only read metadata never hash

    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_sha256_digest(digest: str) -> str:
    """Validate a digest before it becomes part of a path; only sha256 is stored."""
    validate_digest(digest)
    if not digest.startswith("sha256:"):
        raise CorruptContent(f"unsupported digest algorithm in {digest!r}: only sha256 is stored")
    return digest


class BlobWriter:
    """Streams one blob into the ingest area; `commit` verifies it and makes it visible."""

    def __init__(self, store: "BlobStore", expected_digest: str | None, expected_size: int | None,
                 on_verified: Callable[[str], None] | None) -> None:
        self._store = store
        self.expected_digest = check_sha256_digest(expected_digest) if expected_digest else None
        self.expected_size = expected_size
        self._on_verified = on_verified
        import hashlib

        self._hash = hashlib.sha256()
        self.size = 0
        self.tmp_path = store.ingest_dir / f"{os.getpid()}-{os.urandom(8).hex()}"
        self._file: BinaryIO | None = open(self.tmp_path, "xb")
        self._writeback = EarlyWriteback(self._file.fileno())  # so that commit's fsync waits for little
        self.digest: str | None = None

    def write(self, data: bytes | memoryview) -> int:
        assert self._file is not None
        self._hash.update(data)
        self.size += len(data)
        if self.expected_size is not None and self.size > self.expected_size:
            raise CorruptContent(
                f"blob {self.expected_digest or ''} is larger than its declared size {self.expected_size}"
            )
        written = self._file.write(data)
        if self._writeback.due(self.size):
            self._file.flush()
            self._writeback.wrote(self.size)
        return written

    def flush(self) -> None:
        """(For writers layered on this one that flush what they write into, as compressors do.)"""
        assert self._file is not None
        self._file.flush()

    def tell(self) -> int:
        """Bytes written so far (lets tarfile and others write straight into a blob)."""
        return self.size

    def copy_from(self, source: BinaryIO, limit: int | None = None) -> None:
        """Copy `source` (up to `limit` bytes) into the blob."""
        remaining = limit
        while remaining is None or remaining > 0:
            chunk = source.read(CHUNK if remaining is None else min(CHUNK, remaining))
            if not chunk:
                break
            self.write(chunk)
            if remaining is not None:
                remaining -= len(chunk)
        if remaining:
            raise CorruptContent(f"unexpected end of data: {remaining} bytes missing")

    def copy_file_range(self, source_fd: int, offset: int, size: int) -> None:
        """Copy `size` bytes of a regular file from `offset` in the kernel, then hash them from the page cache.

        Copying through Python costs a read and a write of every byte; this is about twice as fast.
        """
        assert self._file is not None
        if self.expected_size is not None and self.size + size > self.expected_size:
            raise CorruptContent(f"blob {self.expected_digest or ''} is larger than its declared size")
        self._file.flush()
        out = self._file.fileno()
        start = self._file.tell()
        done = 0
        while done < size:
            n = os.copy_file_range(source_fd, out, size - done, offset + done)
            if n == 0:
                raise CorruptContent(f"unexpected end of data: {size - done} bytes missing")
            done += n
        self._file.seek(start + size)
        self._writeback.wrote(start + size)  # on its way to disk while it is hashed below
        with open(self.tmp_path, "rb") as copied:
            copied.seek(start)
            remaining = size
            while remaining:
                chunk = copied.read(min(CHUNK, remaining))
                self._hash.update(chunk)
                remaining -= len(chunk)
        self.size += size

    def commit(self) -> str:
        """Verify size and digest, fsync, and move the blob into place. Returns its digest."""
        assert self._file is not None
        digest = "sha256:" + self._hash.hexdigest()
        try:
            if self.expected_size is not None and self.size != self.expected_size:
                raise CorruptContent(
                    f"size mismatch for {self.expected_digest or digest}: expected {self.expected_size} bytes, "
                    f"got {self.size}"
                )
            if self.expected_digest is not None and digest != self.expected_digest:
                raise CorruptContent(f"digest mismatch: expected {self.expected_digest}, got {digest}")
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if self._on_verified is not None:
                self._on_verified(digest)
            final = self._store.path(digest)
            os.rename(self.tmp_path, final)
            self.digest = digest
            return digest
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        try:
            os.unlink(self.tmp_path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.digest is None:
            self.abort()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.blob_dir = root / "blobs" / "sha256"
        self.ingest_dir = root / "ingest"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.ingest_dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.blob_dir / check_sha256_digest(digest)[7:]

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def writer(self, expected_digest: str | None = None, expected_size: int | None = None,
               on_verified: Callable[[str], None] | None = None) -> BlobWriter:
        return BlobWriter(self, expected_digest, expected_size, on_verified)

    def put(self, data: bytes, expected_digest: str | None = None,
            on_verified: Callable[[str], None] | None = None) -> str:
        digest = digest_bytes(data)
        if expected_digest is not None and digest != expected_digest:
            raise CorruptContent(f"digest mismatch: expected {expected_digest}, got {digest}")
        if on_verified is not None:
            on_verified(digest)  # claim it first, so a concurrent sweep cannot remove the copy we find
        if self.exists(digest):
            return digest
        with self.writer(digest, len(data), on_verified) as w:
            w.write(data)
            return w.commit()

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            pass

    def digests(self) -> Iterator[str]:
        for entry in os.scandir(self.blob_dir):
            yield "sha256:" + entry.name

    def ingest_files(self) -> Iterator[tuple[int, Path]]:
        """(writer pid, path) of every in-flight or abandoned upload."""
        for entry in os.scandir(self.ingest_dir):
            pid, _, _ = entry.name.partition("-")
            yield (int(pid) if pid.isdigit() else 0), Path(entry.path)
