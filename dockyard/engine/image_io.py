"""Images in and out without a registry: load and save archives, import a root file system tarball."""

from __future__ import annotations

import os
import stat
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO

from dockyard.engine.images import ImageService
from dockyard.errors import CorruptContent, InvalidArgument, NotFound
from dockyard.image import reference
from dockyard.image.archive import ArchiveReader, SaveEntry, write_archive
from dockyard.image.changes import apply_changes
from dockyard.image.compression import any_uncompressed, sniff
from dockyard.image.model import OCI_LAYER, Descriptor, ImageConfig, new_config
from dockyard.store.images import ImageRecord
from dockyard.timeutil import rfc3339

READ_SIZE = 1 << 20


@dataclass
class LoadResult:
    lines: list[str]  # what `docker load` prints
    images: list[ImageRecord]


def load(service: ImageService, stream: BinaryIO) -> LoadResult:
    """Load every image of an archive; all of them, with their tags, or none."""
    store = service.store
    with store.lease() as lease:
        reader = ArchiveReader(store.blobs, lease.claim_blob)
        found = reader.read(stream)
        for image in found:
            service.unpack(lease, image.manifest, ImageConfig.parse(image.config_raw))
        lines: list[str] = []
        records: list[ImageRecord] = []
        with store.db.write() as conn:
            # One transaction: a failure in the last image leaves none of them recorded.
            for image in found:
                for name in image.names:
                    old = service.records.lookup(str(name))
                    if old is not None and old.id != ImageConfig.parse(image.config_raw).id:
                        lines.append(f"The image {name.familiar} already exists, renaming the old one with ID "
                                     f"{old.id} to empty string")
                record = service.commit_image(lease, image.config_raw, image.manifest, image.names, conn=conn)
                records.append(record)
                if image.names:
                    lines.extend(f"Loaded image: {name.familiar}" for name in image.names)
                else:
                    lines.append(f"Loaded image ID: {record.id}")
    return LoadResult(lines, records)


def save(service: ImageService, names: list[str], out: BinaryIO) -> None:
    """Write the named images to `out`; each carries the references it was named by (none when by id)."""
    entries: dict[str, SaveEntry] = {}
    for name in names:
        image = service.resolve(name)
        entry = entries.setdefault(image.id, SaveEntry(service.manifest_of(image), []))
        if service.names_id(name, image):
            continue
        ref = reference.parse(name)
        if ref.digest is None and ref not in entry.names:
            entry.names.append(ref)
    write_archive(out, list(entries.values()), service.store.blobs)


def open_source(source: str, stdin: BinaryIO) -> tuple[BinaryIO, str]:
    """The stream to import from: '-' for stdin, an http(s) URL, or a file path."""
    if source == "-":
        return stdin, "-"
    if source.startswith(("http://", "https://")):
        try:
            return urllib.request.urlopen(source, timeout=60), source  # noqa: S310 - the user asked for it
        except OSError as e:
            raise NotFound(f"cannot download {source}: {e}") from None
    try:
        return open(source, "rb"), source
    except FileNotFoundError:
        raise NotFound(f"open {source}: no such file or directory") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{source} is a directory, not a tarball") from None


def _is_plain_file(stream: BinaryIO) -> bool:
    """An uncompressed regular file: its bytes can be copied by the kernel as they are."""
    try:
        if not stat.S_ISREG(os.fstat(stream.fileno()).st_mode) or stream.tell() != 0:
            return False
    except (OSError, AttributeError, ValueError):
        return False
    head = os.pread(stream.fileno(), 6, 0)
    return sniff(head) is None and not head.startswith((b"BZh", b"\xfd7zXZ\x00"))


def import_rootfs(service: ImageService, stream: BinaryIO, source_name: str, tag: str | None,
                  changes: list[str], message: str) -> ImageRecord:
    """`docker import`: one layer from a root file system tarball, with config changes applied."""
    ref = reference.parse(tag) if tag else None
    if ref is not None and ref.digest is not None:
        raise InvalidArgument(f"cannot import to a digest reference: {tag}")
    config = apply_changes({}, changes)
    store = service.store
    with store.lease() as lease:
        with store.blobs.writer(on_verified=lease.claim_blob) as writer:
            if _is_plain_file(stream):
                writer.copy_file_range(stream.fileno(), 0, os.fstat(stream.fileno()).st_size)
            else:
                writer.copy_from(any_uncompressed(stream))
            if writer.size == 0:
                raise CorruptContent("import source is empty: not a tarball")
            digest = writer.commit()
        created = rfc3339()
        history = [{"created": created, "comment": message or f"Imported from {source_name}"}]
        config_raw = new_config([digest], config, history, created,
                                extra={"comment": message} if message else None)
        return service.create_image(lease, [(Descriptor(OCI_LAYER, digest, writer.size), digest)], config_raw,
                                    [ref] if ref else [])
