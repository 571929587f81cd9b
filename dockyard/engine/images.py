"""The image service: everything the commands do with images, over the store.

Getting an image in is always the same three steps, whatever the source (archive, registry, build, import):
store its blobs under a lease, unpack its layers into snapshots, then record it with its tags in one
transaction. Until that transaction commits, nothing of it is visible; if the process dies before, the lease
dies with it and the next garbage collection removes what it left.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext

from dockyard.errors import Conflict, CorruptContent, InvalidArgument, NotFound
from dockyard.image import reference
from dockyard.label_filters import labels_match
from dockyard.store.images import ImageRecord, ImageStore
from dockyard.store.snapshots import new_key
from dockyard.store.store import Lease, Store

# The image formats and the layer machinery are imported where they are used: `images`, `tag` and `rmi`
# must start fast and need neither.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO

    from dockyard.image.model import Descriptor, ImageConfig, Manifest


class RemoveReport:
    """What `rmi` did, as Docker reports it: a list of {"Untagged": ...} and {"Deleted": ...}."""

    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []
        self.reclaimed = 0


# A callable that lists (container id, running?) of the containers using an image; set by the container service.
ImageUsers = Callable[[str], list[tuple[str, bool]]]


class ImageService:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.records = ImageStore(store.db)
        self.users_of: ImageUsers = lambda image_id: []

    # --- reading ----------------------------------------------------------------------------------------------

    def resolve(self, name: str) -> ImageRecord:
        return self.records.resolve(name)

    def manifest_of(self, image: ImageRecord) -> Manifest:
        from dockyard.image.model import parse_manifest

        return parse_manifest(self.store.blobs.read(image.manifest_digest))

    def config_of(self, image: ImageRecord) -> ImageConfig:
        from dockyard.image.model import ImageConfig

        return ImageConfig.parse(self.store.blobs.read(image.id))

    # --- getting images in ------------------------------------------------------------------------------------

    def unpack(self, lease: Lease, manifest: Manifest, config: ImageConfig) -> str | None:
        """Make sure a snapshot exists for every layer; return the top chain id (None for no layers)."""
        from dockyard.image.model import chain_ids

        diff_ids = config.diff_ids
        if len(diff_ids) != len(manifest.layers):
            raise CorruptContent(
                f"image has {len(manifest.layers)} layers but its config lists {len(diff_ids)} diff ids"
            )
        parent: str | None = None
        for layer, diff_id, chain_id in zip(manifest.layers, diff_ids, chain_ids(diff_ids)):
            lease.claim_snapshot(chain_id)  # claim before looking, so a sweep cannot take it in between
            if self.store.snapshots.find(chain_id) is None:
                self._unpack_layer(lease, layer, diff_id, chain_id, parent)
            parent = chain_id
        return parent

    def _unpack_layer(self, lease: Lease, layer: Descriptor, diff_id: str, chain_id: str,
                      parent: str | None) -> None:
        snapshots = self.store.snapshots
        key = new_key("extract")
        lease.claim_snapshot(key)
        snap = snapshots.prepare(key, parent)
        try:
            with self.store.blobs.open(layer.digest) as blob:
                result = self._apply_blob(blob, layer, diff_id, snapshots.fs(snap), snapshots.apply_options(snap))
            snapshots.commit(key, chain_id, result)
        except BaseException:
            if snapshots.find(key) is not None:
                snapshots.remove(key)
            raise

    @staticmethod
    def _apply_blob(blob: BinaryIO, layer: Descriptor, diff_id: str, target: str, options) -> int:
        from dockyard.image.compression import HashingReader, ReadAhead, decompressed, sniff_file
        from dockyard.image.layer_apply import apply_layer

        compression = sniff_file(blob)
        if compression is None:
            if layer.digest != diff_id:
                raise CorruptContent(f"layer {layer.digest} is uncompressed, so its diff id must equal its "
                                     f"digest, but the config says {diff_id}")
            return apply_layer(blob, target, options, seekable=True).size
        # Decompression on a thread of its own; hashing and applying here (see ReadAhead).
        with ReadAhead(decompressed(blob, compression)) as ahead:
            stream = HashingReader(ahead)  # type: ignore[arg-type]
            size = apply_layer(stream, target, options).size  # type: ignore[arg-type]
            stream.drain()
        if stream.digest != diff_id:
            raise CorruptContent(f"layer {layer.digest} does not match its diff id: expected {diff_id}, "
                                 f"got {stream.digest}")
        return size

    def commit_image(self, lease: Lease, config_raw: bytes, manifest: Manifest,
                     tags: Iterable[reference.Reference] = (), repo_digests: Iterable[reference.Reference] = (),
                     parent: str | None = None, conn: sqlite3.Connection | None = None) -> ImageRecord:
        """Record an image whose blobs are stored and whose layers are unpacked, with its tags, atomically.

        Pass `conn` to make it part of a larger write transaction of the caller's.
        """
        from dockyard.image.model import ImageConfig, chain_ids

        config = ImageConfig.parse(config_raw)
        if manifest.config.digest != config.id:
            raise CorruptContent(f"manifest names config {manifest.config.digest} but the config is {config.id}")
        chain = chain_ids(config.diff_ids)
        top = chain[-1] if chain else None
        size = sum(s.size for s in self.store.snapshots.chain(top)) if top else 0
        record = ImageRecord(config.id, manifest.digest, top, size, config.created, parent, time.time(), None)
        blobs = [manifest.digest, config.id, *(layer.digest for layer in manifest.layers)]
        for digest in blobs:
            if not self.store.blobs.exists(digest):
                raise CorruptContent(f"image {config.id} is missing blob {digest}")
        with nullcontext(conn) if conn is not None else self.store.db.write() as tx:
            self.records.add(tx, record, blobs)
            for ref in tags:
                self.records.set_tag(tx, ref, record.id)
            for ref in repo_digests:
                self.records.add_repo_digest(tx, ref, record.id)
        return self.records.get(record.id)

    def store_layer(self, lease: Lease, source: BinaryIO, expected_digest: str | None = None) -> Descriptor:
        """Store a layer blob from a stream, as it comes (compressed or not), and describe it."""
        from dockyard.image.compression import sniff
        from dockyard.image.model import OCI_LAYER_BY_COMPRESSION, Descriptor

        with self.store.blobs.writer(expected_digest, on_verified=lease.claim_blob) as writer:
            head = source.read(4)
            writer.write(head)
            writer.copy_from(source)
            digest = writer.commit()
        media_type = OCI_LAYER_BY_COMPRESSION[sniff(head)]
        return Descriptor(media_type, digest, writer.size)

    def diff_id_of(self, layer: Descriptor) -> str:
        """The digest of a layer's uncompressed tar."""
        from dockyard.image.compression import HashingReader, decompressed, sniff_file

        with self.store.blobs.open(layer.digest) as blob:
            compression = sniff_file(blob)
            if compression is None:
                return layer.digest
            stream = HashingReader(decompressed(blob, compression))
            stream.drain()
            return stream.digest

    def create_image(self, lease: Lease, layers: list[tuple[Descriptor, str]], config_raw: bytes,
                     tags: Iterable[reference.Reference] = (), parent: str | None = None) -> ImageRecord:
        """Store config and manifest for layers (descriptor, diff id) already in the blob store; record it."""
        from dockyard.image.model import OCI_CONFIG, Descriptor, ImageConfig, build_manifest

        config_digest = self.store.blobs.put(config_raw, on_verified=lease.claim_blob)
        manifest = build_manifest(Descriptor(OCI_CONFIG, config_digest, len(config_raw)),
                                  [layer for layer, _ in layers])
        self.store.blobs.put(manifest.raw, on_verified=lease.claim_blob)
        self.unpack(lease, manifest, ImageConfig.parse(config_raw))
        return self.commit_image(lease, config_raw, manifest, tags, parent=parent)

    # --- tags -------------------------------------------------------------------------------------------------

    def tag(self, source: str, target: str) -> None:
        image = self.resolve(source)
        ref = reference.parse(target)
        if ref.digest is not None:
            raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
        with self.store.db.write() as conn:
            self.records.set_tag(conn, ref, image.id)

    # --- removing ---------------------------------------------------------------------------------------------

    def remove(self, name: str, force: bool = False, prune: bool = True) -> RemoveReport:
        """Docker's rmi: a reference is untagged, and the image goes when nothing names or needs it any more.

        Named by id, the image is deleted with all its names, unless it is used or named in several
        repositories (then only with force) or has child images or a running container (never).
        """
        image = self.resolve(name)
        report = RemoveReport()
        if self.names_id(name, image):
            self._check_deletable(image, force)
            with self.store.db.write() as conn:
                for ref_name in self.records.tags_of(image.id) + self.records.repo_digests_of(image.id):
                    self.records.remove_tag(conn, ref_name) or self.records.remove_repo_digest(conn, ref_name)
                    report.items.append({"Untagged": reference.familiar(ref_name)})
        else:
            if self._untag(image, reference.parse(name), report):
                return report  # other names remain
            if self.users_of(image.id) or self.records.children_of(image.id):
                return report  # still needed: stays, untagged, as Docker does
        with self.store.db.write() as conn:
            self.records.delete(conn, image.id)
        report.items.append({"Deleted": image.id})
        if prune:
            report.reclaimed = self.store.collect_garbage().bytes
        return report

    def names_id(self, name: str, image: ImageRecord) -> bool:
        """True when the user named the image by (a prefix of) its id rather than by one of its tags."""
        if name.startswith("sha256:"):
            return True
        if not (reference.looks_like_id(name) and image.id[7:].startswith(name)):
            return False
        return str(reference.parse(name)) not in self.records.tags_of(image.id)

    def _untag(self, image: ImageRecord, ref: reference.Reference, report: RemoveReport) -> bool:
        """Remove one name of an image; return whether other names remain.

        Removing the last tag of a repository also removes that repository's digest references.
        """
        with self.store.db.write() as conn:
            if ref.digest:
                name = f"{ref.repository}@{ref.digest}"
                self.records.remove_repo_digest(conn, name)
            else:
                name = str(ref)
                self.records.remove_tag(conn, name)
            report.items.append({"Untagged": reference.familiar(name)})
            tags = self.records.tags_of(image.id)
            if not ref.digest and not any(reference.parse(t).repository == ref.repository for t in tags):
                for digest_ref in self.records.repo_digests_of(image.id):
                    if digest_ref.startswith(ref.repository + "@"):
                        self.records.remove_repo_digest(conn, digest_ref)
                        report.items.append({"Untagged": reference.familiar(digest_ref)})
            return bool(tags or self.records.repo_digests_of(image.id))

    def _check_deletable(self, image: ImageRecord, force: bool) -> None:
        users = self.users_of(image.id)
        running = [cid for cid, is_running in users if is_running]
        if self.records.children_of(image.id):
            raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - image has "
                           f"dependent child images")
        if running:
            raise Conflict(f"conflict: unable to delete {image.short_id} (cannot be forced) - image is being "
                           f"used by running container {running[0][:12]}")
        if force:
            return
        if users:
            raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - image is being "
                           f"used by stopped container {users[0][0][:12]}")
        names = self.records.tags_of(image.id) + self.records.repo_digests_of(image.id)
        repositories = {reference.parse(n, default_tag=False).repository for n in names}
        if len(self.records.tags_of(image.id)) > 1 or len(repositories) > 1:
            raise Conflict(f"conflict: unable to delete {image.short_id} (must be forced) - image is "
                           f"referenced in multiple repositories")

    def prune(self, all_images: bool = False, until: float | None = None,
              label_filters: list[str] | None = None,
              not_label_filters: list[str] | None = None) -> RemoveReport:
        """Remove dangling images (all unused ones with `all_images`)."""
        report = RemoveReport()
        tagged = self.records.all_tags()
        for image in self.records.all():
            if image.id in tagged and not all_images:
                continue
            if self.users_of(image.id) or self.records.children_of(image.id):
                continue
            if until is not None and image.added >= until:
                continue
            if (label_filters or not_label_filters) and not labels_match(
                    self.config_of(image).config.get("Labels") or {}, label_filters or (),
                    not_label_filters or ()):
                continue
            try:
                sub = self.remove(image.id, force=True, prune=False)
            except (Conflict, NotFound):
                continue
            report.items.extend(sub.items)
        if report.items:
            report.reclaimed = self.store.collect_garbage().bytes
        return report
