"""Snapshots and layer blobs for the steps of a build, all claimed by the build's lease.

A step that makes a layer gets a writable snapshot on top of its parent's layers (`writable`), changes it
(through an overlay mount, or for `COPY --link` straight in the upper directory), and `commit` turns it into
a layer: with overlay, the upper directory already is the layer's diff, so it becomes the committed
snapshot in place and the layer tar is written once from it (uncompressed, entries sorted, mtimes clamped to
SOURCE_DATE_EPOCH when set). Nothing is extracted again. A step that changed nothing makes no layer.

`view` gives a read-only directory holding a list of layers as one tree (COPY --from, RUN --mount from=).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dockyard.build.buildstate import Layer
from dockyard.build.sandbox import Sandbox
from dockyard.engine.images import ImageService
from dockyard.image.model import OCI_LAYER, Descriptor, chain_ids, sha256_digest
from dockyard.store.snapshots import OVERLAY, Snapshot, new_key
from dockyard.store.store import Lease


@dataclass
class WorkTree:
    """A writable snapshot being changed by one step."""

    snapshot: Snapshot
    root: str  # where to write: the overlay mount, or the upper directory itself
    upper: str  # the snapshot's own directory (overlay: its changes)
    mounted: bool
    parent_chain: str | None


class LayerMaker:
    def __init__(self, images: ImageService, lease: Lease, sandbox: Sandbox, epoch: int | None) -> None:
        self.images = images
        self.store = images.store
        self.snapshots = images.store.snapshots
        self.lease = lease
        self.sandbox = sandbox
        self.epoch = epoch
        self._present: set[str] = set()  # chain ids known to have a committed snapshot, claimed
        self._views: dict[str, str] = {}

    @property
    def overlay(self) -> bool:
        return self.snapshots.driver == OVERLAY

    # -- snapshots of existing layers
    def ensure(self, layers: list[Layer]) -> str | None:
        """Make sure every layer has a committed snapshot (unpacking a blob where one is missing, e.g. a
        --link layer reused on another parent); claim them. Returns the top chain id."""
        if not layers:
            return None
        chains = chain_ids([layer.diff_id for layer in layers])
        if chains[-1] in self._present:
            return chains[-1]
        from dockyard.image.model import OCI_CONFIG, OCI_MANIFEST, ImageConfig, Manifest

        manifest = Manifest(OCI_MANIFEST, Descriptor(OCI_CONFIG, sha256_digest(b""), 0),
                            [layer.descriptor for layer in layers], b"")
        config = ImageConfig(b"", {"rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]}})
        top = self.images.unpack(self.lease, manifest, config)
        self._present.update(chains)
        return top

    # -- making a layer
    @contextmanager
    def writable(self, parent: list[Layer], *, mount: bool = True) -> Iterator[WorkTree]:
        """A fresh writable snapshot on `parent`, removed on the way out unless committed."""
        parent_chain = self.ensure(parent)
        key = new_key("build")
        self.lease.claim_snapshot(key)
        snap = self.snapshots.prepare(key, parent_chain)
        upper = self.snapshots.fs(snap)
        work = WorkTree(snap, upper, upper, False, parent_chain)
        try:
            if mount or not self.overlay:
                target = self.sandbox.new_dir("rootfs")
                self.snapshots.mount(snap, target)
                self.sandbox.track(target)
                work.root, work.mounted = target, True
            yield work
        finally:
            self.unmount(work)
            if self.snapshots.find(key) is not None:
                self.snapshots.remove(key)

    def unmount(self, work: WorkTree) -> None:
        if work.mounted:
            self.sandbox.unmount(work.root)
            work.mounted = False

    def changes(self, work: WorkTree):  # type: ignore[no-untyped-def]
        return self.snapshots.changes(work.snapshot)

    def commit(self, work: WorkTree, parent: list[Layer]) -> Layer | None:
        """Turn the work tree into a layer on `parent`; None when it holds no change (the snapshot goes)."""
        from dockyard.image.layer_create import write_layer

        self.unmount(work)
        changes = iter(self.changes(work))
        first = next(changes, None)
        if first is None:
            return None
        with self.store.blobs.writer(on_verified=self.lease.claim_blob) as writer:
            write_layer(_chain(first, changes), writer, clamp_mtime=self.epoch)  # type: ignore[arg-type]
            digest = writer.commit()
        chain = chain_ids([*(layer.diff_id for layer in parent), digest])[-1]
        self.lease.claim_snapshot(chain)
        self.snapshots.commit(work.snapshot.key, chain)
        self._present.add(chain)
        return Layer(Descriptor(OCI_LAYER, digest, writer.size), digest)

    # -- reading layers
    def view(self, layers: list[Layer]) -> str:
        """A read-only directory with the merged content of `layers` (kept until the build ends)."""
        top = self.ensure(layers)
        if top is None:
            return self._empty()
        if top in self._views:
            return self._views[top]
        dirs = [self.snapshots.fs(s) for s in self.snapshots.chain(top)]
        if not self.overlay or len(dirs) == 1:
            # vfs: a committed snapshot is the full tree; overlay: a bottom layer holds no whiteouts.
            path = dirs[0]
        else:
            from dockyard import linux

            path = self.sandbox.new_dir("view")
            data = f"lowerdir={':'.join(dirs)},redirect_dir=off,metacopy=off"
            self.sandbox.mount("overlay", path, "overlay", linux.MS_RDONLY, data)
        self._views[top] = path
        return path

    def _empty(self) -> str:
        if "" not in self._views:
            self._views[""] = self.sandbox.new_dir("empty")
        return self._views[""]


def _chain(first, rest):  # type: ignore[no-untyped-def]
    yield first
    yield from rest
