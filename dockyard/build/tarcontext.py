"""Unpacking a build context sent as a tar stream (plain, gzip, bzip2, xz or zstd) into a private directory.

A context tar comes from the user, possibly from a remote client, so it goes through the layer extractor
(dockyard.image.layer_apply) with the same escape rules: absolute names and `..` refused, nothing written
through a symlink, hard links only to what is inside, bounded memory. Devices and FIFOs are skipped and
`.wh.` names are ordinary files: a context is a plain tree.
"""

from __future__ import annotations

import os
import tarfile
from typing import BinaryIO

from dockyard.build.errors import BuildContextError
from dockyard.image.compression import any_uncompressed

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
COMPRESSED_MAGICS = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", ZSTD_MAGIC)


def looks_like_archive(head: bytes) -> bool:
    """True for a compressed stream or a tar header (Docker's test for `docker build - < x`)."""
    if head.startswith(COMPRESSED_MAGICS):
        return True
    if len(head) < 512:
        return False
    try:
        tarfile.TarInfo.frombuf(head[:512], "utf-8", "surrogateescape")
    except tarfile.HeaderError:
        return head[:512] == bytes(512)  # an empty archive starts with a zero block
    return True


def extract_tar(stream: BinaryIO, root: str) -> int:
    """Unpack `stream` into the existing empty directory `root`; returns the number of entries.

    The layer extractor does the work (same escape rules), as a plain tree: no whiteouts, no device nodes.
    """
    from dockyard.errors import UnsafeLayer
    from dockyard.image.layer_apply import ApplyOptions, apply_layer

    options = ApplyOptions(overlay_whiteouts=False, whiteouts=False, special_files=False,
                           same_owner=os.geteuid() == 0)
    try:
        return apply_layer(any_uncompressed(stream), root, options).entries
    except UnsafeLayer as e:
        raise BuildContextError(f"cannot unpack the build context: {e}") from None
