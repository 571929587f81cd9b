"""ADD's local archives: telling a tar (plain, gzip, bzip2, xz or zstd) from any other file, and unpacking it.

Docker unpacks a local source that *is* a tar archive, whatever its name; a compressed file that does not hold
a tar is copied as it is. Unpacking goes through the layer extractor (`image.layer_apply`), which never writes
outside its target, whatever the archive says.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import tarfile
import zlib
from typing import BinaryIO

from dockyard.errors import InvalidArgument

SNIFF = 64 << 10
_MAGICS = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _compression(head: bytes) -> str | None:
    for magic, name in _MAGICS.items():
        if head.startswith(magic):
            return name
    return None


def _decompress_head(head: bytes, compression: str) -> bytes:
    try:
        if compression == "gzip":
            return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1024)
        if compression == "bzip2":
            return bz2.BZ2Decompressor().decompress(head, 1024)
        if compression == "xz":
            return lzma.LZMADecompressor().decompress(head, 1024)
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(head)[:1024]
    except Exception:  # noqa: BLE001 - any decoder error means "not this format"
        return b""


def _is_tar_header(block: bytes) -> bool:
    if len(block) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(block[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return False
    return True


def is_archive(fd: int) -> bool:
    """Does the open file hold a tar archive (possibly compressed)? Reads from offset 0, leaves it there."""
    head = os.pread(fd, SNIFF, 0)
    compression = _compression(head)
    if compression is not None:
        head = _decompress_head(head, compression)
    return _is_tar_header(head)


def open_decompressed(f: BinaryIO) -> BinaryIO:
    head = f.read(8)
    f.seek(0)
    compression = _compression(head)
    if compression is None:
        return f
    if compression == "gzip":
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if compression == "bzip2":
        return bz2.BZ2File(f)  # type: ignore[return-value]
    if compression == "xz":
        return lzma.LZMAFile(f)  # type: ignore[return-value]
    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(f)  # type: ignore[return-value]


def unpack(fd: int, target: str) -> None:
    """Unpack the archive open on `fd` into the empty directory `target` (owners as the archive says)."""
    from dockyard.image.layer_apply import ApplyOptions, apply_layer

    with os.fdopen(os.dup(fd), "rb") as f:
        f.seek(0)
        stream = open_decompressed(f)
        try:
            apply_layer(stream, target, ApplyOptions(overlay_whiteouts=False))
        except (EOFError, OSError, zlib.error, lzma.LZMAError) as e:
            raise InvalidArgument(f"cannot unpack archive: {e}") from None
