"""`push`: an image's layers, config and manifest from the store to a registry.

Compressed layers go as they are stored; uncompressed ones (made here) go gzipped, through a manifest that
names the gzip blobs instead (see gzip_layers.py): its digest becomes the image's repo digest. Each blob is
skipped when the repository has it, mounted from another repository of the same registry that a local
image came from (or went to), or uploaded; several at a time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.engine.images import ImageService
from dockyard.errors import InvalidArgument, NotFound
from dockyard.image import reference
from dockyard.image.model import Descriptor
from dockyard.image.reference import Reference
from dockyard.registry.client.gzip_layers import manifest_to_push
from dockyard.registry.client.parallel import run_all
from dockyard.registry.client.progress import LockedProgress, Progress
from dockyard.registry.client.session import ClientOptions, ClientSession
from dockyard.registry.client.transport import RegistryClient
from dockyard.store.store import Lease

STATUS_TEXT = {"exists": "Layer already exists", "pushed": "Pushed"}


@dataclass
class PushOptions:
    all_tags: bool = False
    client: ClientOptions = field(default_factory=ClientOptions)


@dataclass
class PushResult:
    reference: Reference
    digest: str
    size: int


def push(service: ImageService, name: str, options: PushOptions, progress: Progress) -> list[PushResult]:
    ref = reference.parse(name, default_tag=not options.all_tags)
    if ref.digest is not None:
        raise InvalidArgument(f"cannot push a digest reference: {name}")
    if options.all_tags:
        refs = _tags_of_repository(service, ref)
        if ref.tag is not None:
            raise InvalidArgument("tag can't be used with --all-tags/-a")
    else:
        refs = [ref]
    if not refs:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_repository}")
    images = [service.resolve(str(r)) for r in refs]  # fail before sending anything when one is missing
    progress = LockedProgress(progress)
    progress.message(f"The push refers to repository [{ref.repository}]")
    # The lease claims the gzip blobs a push makes until their image holds them.
    with ClientSession(options.client) as session, service.store.lease() as lease:
        client = session.registry(ref.domain)
        client.ping()  # an unreachable registry fails the push before any layer is gzipped for it
        return [_push_one(service, client, one, image.id, session.options, progress, lease)
                for one, image in zip(refs, images)]


def _tags_of_repository(service: ImageService, ref: Reference) -> list[Reference]:
    found = []
    for names in service.records.all_tags().values():
        for name in names:
            tagged = reference.parse(name)
            if tagged.repository == ref.repository:
                found.append(tagged)
    return sorted(found, key=str)


def _mount_sources(service: ImageService, ref: Reference, digest: str) -> list[str]:
    """Other repositories of the same registry that should have this blob: where local images came from."""
    rows = service.store.db.query(
        "SELECT t.name FROM image_blobs b JOIN tags t ON t.image_id = b.image_id WHERE b.digest = ? "
        "UNION SELECT r.name FROM image_blobs b JOIN repo_digests r ON r.image_id = b.image_id WHERE b.digest = ?",
        (digest, digest))
    sources = []
    for row in rows:
        try:
            other = reference.parse(row[0], default_tag=False)
        except InvalidArgument:
            continue
        if other.domain == ref.domain and other.path != ref.path and other.path not in sources:
            sources.append(other.path)
    return sources


def _push_one(service: ImageService, client: RegistryClient, ref: Reference, image_id: str,
              options: ClientOptions, progress: Progress, lease: Lease) -> PushResult:
    image = service.records.get(image_id)
    manifest = service.manifest_of(image)
    config = service.config_of(image)
    diff_ids = config.diff_ids
    blobs = service.store.blobs
    layer_ids = [d.split(":", 1)[-1][:12] for d in diff_ids] if len(diff_ids) == len(manifest.layers) else \
        [layer.digest.split(":", 1)[-1][:12] for layer in manifest.layers]
    for layer_id in layer_ids:
        progress.layer(layer_id, "Preparing")
    manifest = manifest_to_push(service, lease, image.id, manifest)
    # Everything the database knows is looked up here, on this thread: the transfer threads only do I/O.
    plan: list[tuple[Descriptor, str | None, list[str]]] = []
    for blob, layer_id in [*zip(manifest.layers, layer_ids), (manifest.config, None)]:
        if not blobs.exists(blob.digest):
            raise NotFound(f"blob {blob.digest} of {ref.familiar} is missing from the local store")
        if all(blob.digest != p[0].digest for p in plan):
            plan.append((blob, layer_id, _mount_sources(service, ref, blob.digest)))

    def sender(blob: Descriptor, layer_id: str | None, sources: list[str]) -> Callable[[threading.Event], None]:
        def send(cancel: threading.Event) -> None:
            on_progress = None
            if layer_id is not None:
                def on_progress(done: int, total: int) -> None:
                    progress.layer(layer_id, "Pushing", done, total)
            outcome = client.push_blob(ref.path, blob, lambda: blobs.open(blob.digest), sources, on_progress,
                                       cancel)
            if layer_id is not None:
                text = STATUS_TEXT.get(outcome) or f"Mounted from {sources[0] if sources else ref.path}"
                progress.layer(layer_id, text)

        return send

    run_all([sender(*p) for p in plan], options.max_concurrent_uploads)
    assert ref.tag is not None
    digest = client.put_manifest(ref.path, ref.tag, manifest.raw, manifest.media_type)
    progress.message(f"{ref.tag}: digest: {digest} size: {len(manifest.raw)}")
    with service.store.db.write() as conn:
        service.records.add_repo_digest(conn, ref.repo_only().with_digest(digest), image.id)
    return PushResult(ref, digest, len(manifest.raw))


def push_image(service: ImageService, name: str, options: PushOptions, progress: Progress) -> list[PushResult]:
    """Kept for callers of the first version; `push` itself is synchronous now."""
    return push(service, name, options, progress)
