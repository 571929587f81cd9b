"""`push`: an image's layers, config and manifest from the store to a registry.

Blobs go as they are stored (compressed or not), so the pushed manifest is byte for byte the local one and
its digest is the image's repo digest. Each blob is skipped when the repository has it, mounted from
another repository of the same registry that a local image came from (or went to), or uploaded; several
at a time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from dockyard.engine.images import ImageService
from dockyard.errors import InvalidArgument, NotFound
from dockyard.image import reference
from dockyard.image.model import Descriptor
from dockyard.image.reference import Reference
from dockyard.registry.client.progress import Progress
from dockyard.registry.client.session import ClientOptions, ClientSession
from dockyard.registry.client.transport import RegistryClient

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


async def push(service: ImageService, name: str, options: PushOptions, progress: Progress) -> list[PushResult]:
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
    progress.message(f"The push refers to repository [{ref.repository}]")
    async with ClientSession(options.client) as session:
        client = session.registry(ref.domain)
        results = []
        for one, image in zip(refs, images):
            results.append(await _push_one(service, client, one, image.id, session.options, progress))
        return results


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


async def _push_one(service: ImageService, client: RegistryClient, ref: Reference, image_id: str,
                    options: ClientOptions, progress: Progress) -> PushResult:
    image = service.records.get(image_id)
    manifest = service.manifest_of(image)
    config = service.config_of(image)
    diff_ids = config.diff_ids
    blobs = service.store.blobs
    layer_ids = [d.split(":", 1)[-1][:12] for d in diff_ids] if len(diff_ids) == len(manifest.layers) else \
        [layer.digest.split(":", 1)[-1][:12] for layer in manifest.layers]
    for layer_id in layer_ids:
        progress.layer(layer_id, "Preparing")
    gate = asyncio.Semaphore(max(1, options.max_concurrent_uploads))

    async def send(blob: Descriptor, layer_id: str | None) -> None:
        if not blobs.exists(blob.digest):
            raise NotFound(f"blob {blob.digest} of {ref.familiar} is missing from the local store")
        if layer_id is not None and gate.locked():
            progress.layer(layer_id, "Waiting")
        async with gate:
            on_progress = None
            if layer_id is not None:

                def on_progress(done: int, total: int) -> None:
                    progress.layer(layer_id, "Pushing", done, total)
            sources = _mount_sources(service, ref, blob.digest)
            outcome = await client.push_blob(ref.path, blob, lambda: blobs.open(blob.digest), sources, on_progress)
            if layer_id is not None:
                text = STATUS_TEXT.get(outcome) or f"Mounted from {sources[0] if sources else ref.path}"
                progress.layer(layer_id, text)

    tasks = [asyncio.ensure_future(send(layer, layer_id)) for layer, layer_id in zip(manifest.layers, layer_ids)]
    tasks.append(asyncio.ensure_future(send(manifest.config, None)))
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    assert ref.tag is not None
    digest = await client.put_manifest(ref.path, ref.tag, manifest.raw, manifest.media_type)
    progress.message(f"{ref.tag}: digest: {digest} size: {len(manifest.raw)}")
    with service.store.db.write() as conn:
        service.records.add_repo_digest(conn, ref.repo_only().with_digest(digest), image.id)
    return PushResult(ref, digest, len(manifest.raw))


def push_image(service: ImageService, name: str, options: PushOptions, progress: Progress) -> list[PushResult]:
    return asyncio.run(push(service, name, options, progress))
