"""`pull`: a manifest (or an index, then the manifest for a platform), its config and layers into the store.

The steps are the image service's: blobs into the blob store under a lease (claimed before they are
fetched, so a concurrent garbage collection keeps them), layers unpacked into snapshots (while they download,
see unpack.py), then the image recorded with its tag and repo digest in one transaction. Layers download in
parallel; each is verified before it becomes visible, so an interrupted or failed pull leaves nothing
half-stored. The store's database is only used on the calling thread; transfer threads do I/O only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from dockyard.engine.images import ImageService
from dockyard.errors import InvalidArgument
from dockyard.image import reference
from dockyard.image.model import INDEX_TYPES, Descriptor, ImageConfig, Manifest, parse_index, parse_manifest
from dockyard.image.reference import Reference
from dockyard.registry.client import platforms
from dockyard.registry.client.parallel import run_all
from dockyard.registry.client.progress import LockedProgress, Progress
from dockyard.registry.client.session import ClientOptions, ClientSession
from dockyard.registry.client.transport import RegistryClient
from dockyard.registry.client.unpack import UnpackChain
from dockyard.store.images import ImageRecord
from dockyard.store.store import Lease


@dataclass
class PullOptions:
    platform: str | None = None
    all_tags: bool = False
    client: ClientOptions = field(default_factory=ClientOptions)


@dataclass
class PullResult:
    reference: Reference
    image: ImageRecord
    digest: str          # of what the reference names: the index for a multi-platform image
    updated: bool        # False: the reference already named this image ("Image is up to date")


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def pull(service: ImageService, name: str, options: PullOptions, progress: Progress) -> list[PullResult]:
    ref = reference.parse(name, default_tag=not options.all_tags)
    if options.all_tags and (ref.tag is not None or ref.digest is not None):
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    wanted = platforms.parse_platform(options.platform)
    progress = LockedProgress(progress)
    with ClientSession(options.client) as session:
        client = session.registry(ref.domain)
        if options.all_tags:
            refs = [ref.with_tag(tag) for tag in sorted(client.list_tags(ref.path))]
        else:
            refs = [ref]
        return [_pull_one(service, client, one, wanted, session.options, progress) for one in refs]


def _pull_one(service: ImageService, client: RegistryClient, ref: Reference, wanted: platforms.Platform,
              options: ClientOptions, progress: Progress) -> PullResult:
    what = ref.tag if ref.digest is None else ref.digest
    raw, media_type, digest = client.get_manifest(ref.path, ref.digest or ref.tag or "latest")
    progress.message(f"{what}: Pulling from {ref.path}")
    top_digest = digest
    if media_type in INDEX_TYPES:
        _, entries = parse_index(raw)
        chosen = platforms.choose(entries, wanted)
        raw, media_type, digest = client.get_manifest(ref.path, chosen.digest)
        if digest != chosen.digest:
            raise InvalidArgument(f"index entry {chosen.digest} answered with manifest {digest}")
    manifest = parse_manifest(raw, media_type)
    previous = service.records.lookup(str(ref)) if ref.digest is None else None
    store = service.store
    with store.lease() as lease:
        lease.claim_blob(manifest.digest)
        store.blobs.put(raw)
        config_raw = _fetch_small(client, ref, manifest, lease, service)
        config = ImageConfig.parse(config_raw)
        streamed = _fetch_layers(client, ref, manifest, config, lease, service, options.max_concurrent_downloads,
                                 progress)
        fresh = [layer for layer in manifest.layers if not _unpacked(service, layer.digest)]
        for layer in fresh:
            if layer.digest not in streamed:
                progress.layer(short(layer.digest), "Extracting")
        service.unpack(lease, manifest, config)  # the layers not unpacked while they downloaded
        for layer in fresh:
            progress.layer(short(layer.digest), "Pull complete")
        tags = [ref] if ref.digest is None else []
        record = service.commit_image(lease, config_raw, manifest, tags, [ref.repo_only().with_digest(top_digest)])
    updated = previous is None or previous.id != record.id
    progress.message(f"Digest: {top_digest}")
    status = "Downloaded newer image" if updated else "Image is up to date"
    progress.message(f"Status: {status} for {ref.familiar}")
    return PullResult(ref, record, top_digest, updated)


def _unpacked(service: ImageService, layer_digest: str) -> bool:
    """A cheap guess for progress messages only: is some image already holding this layer blob?"""
    return bool(service.store.db.query("SELECT 1 FROM image_blobs WHERE digest = ? LIMIT 1", (layer_digest,)))


def _fetch_small(client: RegistryClient, ref: Reference, manifest: Manifest, lease: Lease,
                 service: ImageService) -> bytes:
    blobs = service.store.blobs
    config = manifest.config
    lease.claim_blob(config.digest)
    if not blobs.exists(config.digest):
        client.fetch_blob(ref.path, config, lambda: blobs.writer(config.digest, config.size))
    return blobs.read(config.digest)


def _fetch_layers(client: RegistryClient, ref: Reference, manifest: Manifest, config: ImageConfig,
                  lease: Lease, service: ImageService, parallel: int, progress: Progress) -> set[str]:
    """Download the missing layers; returns the digests of those unpacked while they downloaded."""
    blobs = service.store.blobs
    todo: list[Descriptor] = []
    for layer in manifest.layers:
        # Claimed before looking and before fetching: a sweep running meanwhile keeps it either way.
        lease.claim_blob(layer.digest)
        if blobs.exists(layer.digest):
            progress.layer(short(layer.digest), "Already exists")
        elif layer not in todo:
            progress.layer(short(layer.digest), "Pulling fs layer")
            todo.append(layer)
    chain = UnpackChain(service, lease, manifest, config, {layer.digest for layer in todo})

    def fetcher(layer: Descriptor) -> Callable[[threading.Event], None]:
        layer_id = short(layer.digest)
        sink = chain.sink(layer.digest)

        def fetch(cancel: threading.Event) -> None:
            client.fetch_blob(ref.path, layer, lambda: blobs.writer(layer.digest, layer.size),
                              lambda done, total: progress.layer(layer_id, "Downloading", done, total), cancel,
                              sink)
            if sink is not None:
                sink.end()
            progress.layer(layer_id, "Verifying Checksum")
            progress.layer(layer_id, "Download complete")

        return fetch

    try:
        run_all([fetcher(layer) for layer in todo], parallel, chain.tick, chain.wake)
        chain.tick(wait=True)
    except BaseException:
        chain.abort()
        raise
    return chain.committed


def pull_image(service: ImageService, name: str, options: PullOptions, progress: Progress) -> list[PullResult]:
    """Kept for callers of the first version; `pull` itself is synchronous now."""
    return pull(service, name, options, progress)
