"""Image archives: the docker-archive form that `docker save` writes, and the OCI image layout.

dockyard writes both in one tar, as Docker 25 does: blobs/sha256/<hex> for every blob, `index.json` and
`oci-layout` for OCI readers, and `manifest.json` and `repositories` for docker-archive readers.

Reading streams the tar once: every file that may be a blob goes straight into the blob store (verified
against its name when it is under blobs/sha256/), small metadata files are kept in memory, and only then are
manifest.json or index.json interpreted. So an archive can come from a pipe, and memory stays bounded.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO, Callable

from dockyard.errors import CorruptContent, InvalidReference
from dockyard.image import reference
from dockyard.image.compression import sniff
from dockyard.image.model import (
    ANNOTATION_CONTAINERD_NAME,
    ANNOTATION_REF_NAME,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_BY_COMPRESSION,
    Descriptor,
    ImageConfig,
    Manifest,
    build_manifest,
    host_platform,
    parse_index,
    parse_json,
    parse_manifest,
)
from dockyard.store.blobs import BlobStore

METADATA_MAX = 32 << 20  # manifest.json, index.json, configs: anything larger is not metadata
COPY_CHUNK = 1 << 20


@dataclass
class ArchiveImage:
    """One image found in an archive, its blobs already in the store."""

    config_raw: bytes
    manifest: Manifest
    names: list[reference.Reference] = field(default_factory=list)


class ArchiveReader:
    def __init__(self, blobs: BlobStore, claim: Callable[[str], None]) -> None:
        self.blobs = blobs
        self.claim = claim
        self.small: dict[str, bytes] = {}  # path -> content, for metadata files
        self.stored: dict[str, tuple[str, int, bytes]] = {}  # path -> (digest, size, first bytes)
        self.links: dict[str, str] = {}  # path -> path it links to

    # --- pass 1: the tar -------------------------------------------------------------------------------------

    def read(self, stream: BinaryIO) -> list[ArchiveImage]:
        # A regular file is read in place (its blobs copied by the kernel); a pipe is streamed.
        source_fd = _regular_file_fd(stream)
        try:
            with tarfile.open(fileobj=stream, mode="r:" if source_fd is not None else "r|",
                              bufsize=COPY_CHUNK) as tar:
                while (member := tar.next()) is not None:
                    tar.members.clear()
                    self._member(tar, member, source_fd)
        except tarfile.TarError as e:
            raise CorruptContent(f"invalid archive: {e}") from None
        except EOFError:
            raise CorruptContent("invalid archive: it ends in the middle of an entry") from None
        return self._images()

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo, source_fd: int | None) -> None:
        path = posixpath.normpath(member.name.lstrip("/"))
        if member.issym() or member.islnk():
            target = member.linkname
            if member.issym():
                target = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
            self.links[path] = target.lstrip("/")
            return
        if not member.isreg():
            return
        data = tar.extractfile(member)
        assert data is not None
        parts = path.split("/")
        in_place = (source_fd, member.offset_data) if source_fd is not None else None
        if len(parts) == 3 and parts[:2] == ["blobs", "sha256"]:
            digest = "sha256:" + parts[2]
            self._store(path, data, member.size, digest, in_place)
        elif member.size <= METADATA_MAX and (path.endswith(".json") or path in ("repositories", "oci-layout")
                                               or path.endswith("/json") or path.endswith("/VERSION")):
            self.small[path] = _read_exact(data, member.size)
        else:
            self._store(path, data, member.size, None, in_place)

    def _store(self, path: str, data: BinaryIO, size: int, digest: str | None,
               in_place: tuple[int, int] | None) -> None:
        if digest is not None:
            self.claim(digest)  # claim first: a concurrent sweep must not remove a copy we are about to reuse
            if self.blobs.exists(digest):
                # Already stored: still check the archive's copy, so a corrupt archive never loads silently.
                head = _verify_stream(data, size, digest)
                self.stored[path] = (digest, size, head)
                return
        with self.blobs.writer(digest, size, on_verified=self.claim) as writer:
            if in_place is not None:
                fd, offset = in_place
                head = os.pread(fd, min(4, size), offset)
                writer.copy_file_range(fd, offset, size)
            else:
                head = data.read(min(4, size))
                writer.write(head)
                writer.copy_from(data, size - len(head))
            stored = writer.commit()
        self.stored[path] = (stored, size, head)

    # --- pass 2: interpreting --------------------------------------------------------------------------------

    def _resolve(self, path: str) -> str:
        path = posixpath.normpath(path.lstrip("/"))
        for _ in range(40):
            if path not in self.links:
                return path
            path = self.links[path]
        raise CorruptContent(f"archive has a symlink loop at {path!r}")

    def _content(self, path: str) -> bytes:
        path = self._resolve(path)
        if path in self.small:
            return self.small[path]
        if path in self.stored:
            return self.blobs.read(self.stored[path][0])
        raise CorruptContent(f"archive lacks {path!r}")

    def _blob(self, path: str) -> tuple[str, int, bytes]:
        path = self._resolve(path)
        if path in self.stored:
            return self.stored[path]
        if path in self.small:
            digest = self.blobs.put(self.small[path], on_verified=self.claim)
            return digest, len(self.small[path]), self.small[path][:4]
        raise CorruptContent(f"archive lacks {path!r}")

    def _blob_by_digest(self, digest: str) -> bytes:
        path = "blobs/sha256/" + digest.split(":", 1)[1]
        return self._content(path)

    def _images(self) -> list[ArchiveImage]:
        if "manifest.json" in self.small:
            return self._docker_images()
        if "index.json" in self.small:
            return self._oci_images()
        raise CorruptContent("not an image archive: it has neither manifest.json nor index.json")

    def _docker_images(self) -> list[ArchiveImage]:
        entries = parse_json(self.small["manifest.json"], "manifest.json")
        if not isinstance(entries, list):
            raise CorruptContent("manifest.json must be a list")
        # Docker 25+ archives also carry OCI manifests: reuse them, so digests survive the round trip.
        oci_manifests: dict[str, Manifest] = {}
        if "index.json" in self.small:
            for image in self._oci_images():
                oci_manifests[image.manifest.config.digest] = image.manifest
        images = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or not isinstance(
                    entry.get("Layers"), list):
                raise CorruptContent(f"manifest.json entry {i} lacks Config or Layers")
            config_raw = self._content(entry["Config"])
            config = ImageConfig.parse(config_raw)
            names = [_parse_name(tag) for tag in entry.get("RepoTags") or []]
            manifest = oci_manifests.get(config.id)
            if manifest is None or len(manifest.layers) != len(entry["Layers"]):
                config_digest = self.blobs.put(config_raw, on_verified=self.claim)
                layers = []
                for layer_path in entry["Layers"]:
                    digest, size, head = self._blob(layer_path)
                    layers.append(Descriptor(OCI_LAYER_BY_COMPRESSION[sniff(head)], digest, size))
                manifest = build_manifest(Descriptor(OCI_CONFIG, config_digest, len(config_raw)), layers)
            self.blobs.put(manifest.raw, on_verified=self.claim)
            images.append(ArchiveImage(config_raw, manifest, names))
        return images

    def _oci_images(self) -> list[ArchiveImage]:
        _, entries = parse_index(self.small["index.json"])
        images = []
        for entry in entries:
            manifest = self._select_manifest(entry, depth=0)
            if manifest is None:
                continue
            config_raw = self._blob_by_digest(manifest.config.digest)
            names = []
            name = entry.annotations.get(ANNOTATION_CONTAINERD_NAME) or entry.annotations.get(ANNOTATION_REF_NAME)
            if name and (":" in name or "/" in name or "@" in name):
                try:
                    names.append(reference.parse(name))
                except InvalidReference:
                    pass  # a bare tag in ref.name, as some tools write: the image loads untagged
            for layer in manifest.layers:
                self.claim(layer.digest)
                if not self.blobs.exists(layer.digest):
                    raise CorruptContent(f"archive lacks layer {layer.digest}")
            images.append(ArchiveImage(config_raw, manifest, names))
        if not images:
            raise CorruptContent("index.json lists no image for this platform")
        return images

    def _select_manifest(self, entry: Descriptor, depth: int) -> Manifest | None:
        if depth > 4:
            raise CorruptContent("image indexes nested too deep")
        raw = self._blob_by_digest(entry.digest)
        value = parse_json(raw, f"manifest {entry.digest}")
        media_type = (value.get("mediaType") if isinstance(value, dict) else None) or entry.media_type
        if media_type in INDEX_TYPES:
            _, children = parse_index(raw)
            chosen = _pick_platform(children)
            return self._select_manifest(chosen, depth + 1) if chosen else None
        if media_type not in MANIFEST_TYPES:
            raise CorruptContent(f"unsupported manifest media type {media_type!r}")
        return parse_manifest(raw, media_type)


def _parse_name(text: str) -> reference.Reference:
    ref = reference.parse(text)
    if ref.digest is not None:
        raise CorruptContent(f"archive tags an image with a digest reference: {text}")
    return ref


def _pick_platform(entries: list[Descriptor]) -> Descriptor | None:
    os_name, arch, variant = host_platform()
    best = None
    for entry in entries:
        p = entry.platform or {}
        if p.get("os", os_name) == os_name and p.get("architecture", arch) == arch:
            if variant is None or p.get("variant") in (None, variant):
                return entry
            best = best or entry
    return best


def _regular_file_fd(stream: BinaryIO) -> int | None:
    import stat

    try:
        fd = stream.fileno()
        if stat.S_ISREG(os.fstat(fd).st_mode) and stream.tell() == 0:
            return fd
    except (OSError, AttributeError, ValueError):
        pass
    return None


def _verify_stream(data: BinaryIO, size: int, digest: str) -> bytes:
    """Read `size` bytes and check them against `digest`; return the first four."""
    import hashlib

    h = hashlib.sha256()
    head, remaining = b"", size
    while remaining:
        chunk = data.read(min(COPY_CHUNK, remaining))
        if not chunk:
            raise CorruptContent("archive ends in the middle of a file")
        head = head or chunk[:4]
        h.update(chunk)
        remaining -= len(chunk)
    if "sha256:" + h.hexdigest() != digest:
        raise CorruptContent(f"digest mismatch: archive's blob {digest} has content sha256:{h.hexdigest()}")
    return head


def _read_exact(data: BinaryIO, size: int) -> bytes:
    content = data.read(size)
    if len(content) != size:
        raise CorruptContent("archive ends in the middle of a file")
    return content


# --- writing ----------------------------------------------------------------------------------------------------

@dataclass
class SaveEntry:
    manifest: Manifest
    names: list[reference.Reference]


class _TarWriter:
    """A minimal tar writer that lets the kernel copy file data (sendfile) instead of Python."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.fd = out.fileno() if hasattr(out, "fileno") else None

    def _header(self, info: tarfile.TarInfo) -> None:
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self.out.write(info.tobuf(format=tarfile.PAX_FORMAT))

    def directory(self, name: str) -> None:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        self._header(info)

    def data(self, name: str, content: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = len(content), 0o644
        self._header(info)
        self.out.write(content)
        self._pad(len(content))

    def file(self, name: str, path: str, size: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mode = size, 0o644
        self._header(info)
        with open(path, "rb") as src:
            if self.fd is not None:
                self.out.flush()
                offset = 0
                while offset < size:
                    try:
                        sent = os.sendfile(self.fd, src.fileno(), offset, size - offset)
                    except OSError as e:
                        if e.errno not in (errno.EINVAL, errno.ENOSYS):
                            raise
                        self.fd = None
                        src.seek(offset)
                        break
                    if sent == 0:
                        raise CorruptContent(f"blob {path} shrank while it was being saved")
                    offset += sent
                else:
                    self._pad(size)
                    return
            while chunk := src.read(COPY_CHUNK):
                self.out.write(chunk)
        self._pad(size)

    def _pad(self, size: int) -> None:
        remainder = size % tarfile.BLOCKSIZE
        if remainder:
            self.out.write(b"\0" * (tarfile.BLOCKSIZE - remainder))

    def close(self) -> None:
        self.out.write(b"\0" * (2 * tarfile.BLOCKSIZE))
        self.out.flush()


def write_archive(out: BinaryIO, entries: list[SaveEntry], blobs: BlobStore) -> None:
    """Write images as one tar readable both as a docker-archive and as an OCI image layout."""
    writer = _TarWriter(out)
    writer.directory("blobs/")
    writer.directory("blobs/sha256/")
    written: set[str] = set()
    for entry in entries:
        for digest in [entry.manifest.config.digest, *(layer.digest for layer in entry.manifest.layers),
                       entry.manifest.digest]:
            if digest not in written:
                written.add(digest)
                writer.file(f"blobs/sha256/{digest[7:]}", str(blobs.path(digest)), blobs.size(digest))
    index, docker_manifest, repositories = [], [], {}
    for entry in entries:
        manifest = entry.manifest
        descriptor = {"mediaType": manifest.media_type, "digest": manifest.digest, "size": len(manifest.raw)}
        for name in entry.names:
            index.append({**descriptor, "annotations": {ANNOTATION_CONTAINERD_NAME: str(name),
                                                        ANNOTATION_REF_NAME: name.tag or ""}})
            if manifest.layers:
                repositories.setdefault(name.familiar_repository, {})[name.tag] = manifest.layers[-1].digest[7:]
        if not entry.names:
            index.append(descriptor)
        docker_manifest.append({
            "Config": f"blobs/sha256/{manifest.config.digest[7:]}",
            "RepoTags": [name.familiar for name in entry.names] or None,
            "Layers": [f"blobs/sha256/{layer.digest[7:]}" for layer in manifest.layers],
        })
    writer.data("index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": index}).encode())
    writer.data("manifest.json", json.dumps(docker_manifest).encode())
    writer.data("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    if repositories:
        writer.data("repositories", json.dumps(repositories).encode())
    writer.close()

