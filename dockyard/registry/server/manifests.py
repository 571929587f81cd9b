"""What the registry needs to know of a pushed manifest: its media type, the content it references, its subject.

The server is deliberately lenient about content (an OCI 1.1 artifact may carry any config and layer media
types) and strict about structure: every descriptor must have a valid digest and a non-negative size, so
that the blob checks and the referrers index can rely on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from dockyard.image.model import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from dockyard.registry.names import is_digest
from dockyard.registry.server.errors import RegistryError

MANIFEST_MEDIA_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
KNOWN_MEDIA_TYPES = MANIFEST_MEDIA_TYPES + INDEX_MEDIA_TYPES
SCHEMA1_MEDIA_TYPES = ("application/vnd.docker.distribution.manifest.v1+json",
                       "application/vnd.docker.distribution.manifest.v1+prettyjws")
# Layers that are, by design, not pushed to the registry: they may be missing when a manifest names them.
NONDISTRIBUTABLE_LAYERS = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()


@dataclass
class ParsedManifest:
    media_type: str
    blobs: list[Descriptor] = field(default_factory=list)      # config and layers: must be blobs in the repo
    children: list[Descriptor] = field(default_factory=list)   # index entries: must be manifests in the repo
    subject: Descriptor | None = None
    artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def may_be_missing(self, blob: Descriptor) -> bool:
        return bool(blob.urls) and blob.media_type in NONDISTRIBUTABLE_LAYERS


def _invalid(message: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", message)


def _descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise _invalid(f"{what}: a descriptor must be a JSON object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(f"{what}: descriptor lacks a mediaType")
    if not isinstance(digest, str) or not is_digest(digest):
        raise _invalid(f"{what}: descriptor has an invalid digest {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{what}: descriptor has an invalid size {size!r}")
    urls = value.get("urls") or []
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise _invalid(f"{what}: urls must be a list of strings")
    return Descriptor(media_type, digest, size, tuple(urls))


def bare_media_type(content_type: str | None) -> str:
    """'application/x; charset=utf-8' -> 'application/x' (parameters are ignored, as the spec says)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse(raw: bytes, content_type: str | None) -> ParsedManifest:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"manifest is not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise _invalid("manifest must be a JSON object")
    declared = value.get("mediaType")
    header = bare_media_type(content_type)
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType must be a string")
    if declared and header and header != declared.lower() and header not in ("application/json",
                                                                           "application/octet-stream"):
        raise _invalid(f"Content-Type {header!r} does not match the manifest's mediaType {declared!r}")
    media_type = declared or header
    if media_type in SCHEMA1_MEDIA_TYPES or value.get("schemaVersion") == 1:
        raise _invalid("Docker schema 1 manifests are not supported; push a schema 2 or OCI manifest")
    if media_type not in KNOWN_MEDIA_TYPES:
        # Without a usable declaration, the structure tells an OCI manifest from an OCI index.
        if "manifests" in value:
            media_type = OCI_INDEX
        elif "config" in value:
            media_type = OCI_MANIFEST
        else:
            raise _invalid(f"unsupported manifest media type {media_type!r}")
    if value.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    parsed = ParsedManifest(media_type)
    if media_type in INDEX_MEDIA_TYPES:
        entries = value.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("an index must have a 'manifests' list")
        parsed.children = [_descriptor(m, f"manifests[{i}]") for i, m in enumerate(entries)]
    else:
        parsed.blobs.append(_descriptor(value.get("config"), "config"))
        layers = value.get("layers")
        if not isinstance(layers, list):
            raise _invalid("a manifest must have a 'layers' list")
        parsed.blobs.extend(_descriptor(layer, f"layers[{i}]") for i, layer in enumerate(layers))
    if value.get("subject") is not None:
        parsed.subject = _descriptor(value["subject"], "subject")
    artifact_type = value.get("artifactType")
    if isinstance(artifact_type, str) and artifact_type:
        parsed.artifact_type = artifact_type
    elif media_type in MANIFEST_MEDIA_TYPES:
        # The spec: a manifest without artifactType is listed under its config's media type.
        parsed.artifact_type = parsed.blobs[0].media_type
    annotations = value.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
        raise _invalid("annotations must map strings to strings")
    parsed.annotations = annotations
    return parsed
