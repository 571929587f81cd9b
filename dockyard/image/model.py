"""OCI and Docker image formats: media types, manifests, configs and layer identities.

Images are stored in OCI form. Docker schema2 manifests and indexes are read as well (their structure is the
same, only the media types differ), and a manifest's original bytes are kept, since its digest is its name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from dockyard.errors import CorruptContent
from dockyard.image.reference import validate_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
# media type -> compression of the layer blob
LAYER_TYPES = {
    OCI_LAYER: None, OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd", OCI_LAYER_NONDIST: None,
    OCI_LAYER_NONDIST_GZIP: "gzip", DOCKER_LAYER: None, DOCKER_LAYER_GZIP: "gzip", DOCKER_FOREIGN_LAYER: "gzip",
}
OCI_LAYER_BY_COMPRESSION = {None: OCI_LAYER, "gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD}

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"


def canonical_json(value: Any) -> bytes:
    """Compact, key-sorted JSON: the same value always gives the same bytes, hence the same digest."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode()


def sha256_digest(data: bytes) -> str:
    import hashlib  # (here, not at the top: the monitor imports this module and never hashes)

    return "sha256:" + hashlib.sha256(data).hexdigest()


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln))."""
    result: list[str] = []
    for diff_id in diff_ids:
        if not result:
            result.append(diff_id)
        else:
            result.append(sha256_digest(f"{result[-1]} {diff_id}".encode()))
    return result


def host_platform() -> tuple[str, str, str | None]:
    """(os, architecture, variant) in OCI's words."""
    machine = os.uname().machine  # what platform.machine() returns here, without importing platform (~1 ms)
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386",
            "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}.get(machine, machine)
    variant = "v7" if machine == "armv7l" else ("v8" if arch == "arm64" else None)
    return "linux", arch, variant


def compression_of(data_head: bytes) -> str | None:
    """Sniff a layer's compression from its first bytes."""
    if data_head.startswith(b"\x1f\x8b"):
        return "gzip"
    if data_head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return None


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict)
    platform: dict[str, Any] | None = None

    @classmethod
    def from_json(cls, value: Any, what: str) -> "Descriptor":
        if not isinstance(value, dict):
            raise CorruptContent(f"{what}: descriptor must be an object")
        try:
            media_type, digest, size = value["mediaType"], value["digest"], value["size"]
        except KeyError as e:
            raise CorruptContent(f"{what}: descriptor lacks {e.args[0]!r}") from None
        if not isinstance(media_type, str) or not isinstance(size, int) or size < 0:
            raise CorruptContent(f"{what}: descriptor has a bad mediaType or size")
        validate_digest(digest)
        annotations = value.get("annotations") or {}
        return cls(media_type, digest, size, dict(annotations), value.get("platform"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = self.annotations
        if self.platform:
            out["platform"] = self.platform
        return out


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]
    raw: bytes

    @property
    def digest(self) -> str:
        return sha256_digest(self.raw)


def parse_json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise CorruptContent(f"{what} is not valid JSON: {e}") from None


def parse_manifest(raw: bytes, media_type: str | None = None) -> Manifest:
    value = parse_json(raw, "manifest")
    if not isinstance(value, dict):
        raise CorruptContent("manifest must be a JSON object")
    media_type = value.get("mediaType") or media_type or OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise CorruptContent(f"unsupported manifest media type {media_type!r}")
    if value.get("schemaVersion") != 2:
        raise CorruptContent("unsupported manifest: schemaVersion must be 2")
    config = Descriptor.from_json(value.get("config"), "manifest config")
    if config.media_type not in CONFIG_TYPES:
        raise CorruptContent(f"unsupported config media type {config.media_type!r}")
    layers_json = value.get("layers")
    if not isinstance(layers_json, list):
        raise CorruptContent("manifest layers must be a list")
    layers = [Descriptor.from_json(layer, f"manifest layer {i}") for i, layer in enumerate(layers_json)]
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise CorruptContent(f"unsupported layer media type {layer.media_type!r}")
    return Manifest(media_type, config, layers, raw)


def parse_index(raw: bytes) -> tuple[str, list[Descriptor]]:
    value = parse_json(raw, "image index")
    if not isinstance(value, dict) or not isinstance(value.get("manifests"), list):
        raise CorruptContent("image index must be an object with a 'manifests' list")
    media_type = value.get("mediaType") or OCI_INDEX
    return media_type, [Descriptor.from_json(m, f"index entry {i}") for i, m in enumerate(value["manifests"])]


def build_manifest(config: Descriptor, layers: list[Descriptor]) -> Manifest:
    value = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    return Manifest(OCI_MANIFEST, config, layers, json.dumps(value, indent=2).encode())


@dataclass
class ImageConfig:
    """An image config (the JSON whose digest is the image id), with the fields dockyard reads."""

    raw: bytes
    value: dict[str, Any]

    @classmethod
    def parse(cls, raw: bytes) -> "ImageConfig":
        value = parse_json(raw, "image config")
        if not isinstance(value, dict):
            raise CorruptContent("image config must be a JSON object")
        rootfs = value.get("rootfs")
        if not isinstance(rootfs, dict) or rootfs.get("type") != "layers" or not isinstance(
                rootfs.get("diff_ids", []), list):
            raise CorruptContent("image config lacks rootfs of type 'layers' with a diff_ids list")
        for diff_id in rootfs.get("diff_ids") or []:
            validate_digest(diff_id)
        return cls(raw, value)

    @property
    def id(self) -> str:
        return sha256_digest(self.raw)

    @property
    def diff_ids(self) -> list[str]:
        return list(self.value["rootfs"].get("diff_ids") or [])

    @property
    def config(self) -> dict[str, Any]:
        return self.value.get("config") or {}

    @property
    def created(self) -> str | None:
        return self.value.get("created")

    @property
    def history(self) -> list[dict[str, Any]]:
        return list(self.value.get("history") or [])


def new_config(diff_ids: list[str], config: dict[str, Any], history: list[dict[str, Any]], created: str,
               author: str = "", extra: dict[str, Any] | None = None) -> bytes:
    """Serialise a new image config for this host's platform."""
    os_name, arch, variant = host_platform()
    value: dict[str, Any] = {"architecture": arch, "os": os_name}
    if variant:
        value["variant"] = variant
    value.update({"created": created, "config": config, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                  "history": history})
    if author:
        value["author"] = author
    if extra:
        value.update(extra)
    return canonical_json(value)
