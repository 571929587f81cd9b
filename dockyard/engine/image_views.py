"""Images as Docker shows them: the Engine API's image inspect, history and list shapes.

The CLI and the API server both print these, so they live in the engine, not in either front end.
"""

from __future__ import annotations

from typing import Any

from dockyard.engine.images import ImageService
from dockyard.image import reference
from dockyard.image.model import chain_ids
from dockyard.store.images import ImageRecord
from dockyard.timeutil import parse_rfc3339

ZERO_TIME = "0001-01-01T00:00:00Z"

# Docker's container.Config in its field order: (key, value of an empty config, left out when unset?).
CONFIG_FIELDS: list[tuple[str, Any, bool]] = [
    ("Hostname", "", False), ("Domainname", "", False), ("User", "", False), ("AttachStdin", False, False),
    ("AttachStdout", False, False), ("AttachStderr", False, False), ("ExposedPorts", None, True),
    ("Tty", False, False), ("OpenStdin", False, False), ("StdinOnce", False, False), ("Env", None, False),
    ("Cmd", None, False), ("Healthcheck", None, True), ("ArgsEscaped", None, True), ("Image", "", False),
    ("Volumes", None, False), ("WorkingDir", "", False), ("Entrypoint", None, False),
    ("NetworkDisabled", None, True), ("MacAddress", None, True), ("OnBuild", None, False), ("Labels", None, False),
    ("StopSignal", None, True), ("StopTimeout", None, True), ("Shell", None, True),
]


def docker_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """An image config section completed to the shape Docker's inspect prints."""
    config = config or {}
    return {key: config.get(key, default) for key, default, omit_empty in CONFIG_FIELDS
            if not omit_empty or config.get(key) is not None}


def inspect(service: ImageService, image: ImageRecord) -> dict[str, Any]:
    config = service.config_of(image)
    value = config.value
    snapshots = service.store.snapshots
    chain = snapshots.chain(image.chain_id) if image.chain_id else []
    graph: dict[str, Any] = {"Name": snapshots.driver, "Data": None}
    if chain and snapshots.driver == "overlay":
        graph["Data"] = {
            "LowerDir": ":".join(snapshots.fs(s) for s in chain[1:]) or None,
            "UpperDir": snapshots.fs(chain[0]),
            "WorkDir": str(snapshots.dir / str(chain[0].id) / "work"),
            "MergedDir": str(snapshots.dir / str(chain[0].id) / "merged"),
        }
        if graph["Data"]["LowerDir"] is None:
            del graph["Data"]["LowerDir"]
    elif chain:
        graph["Data"] = {"Dir": snapshots.fs(chain[0])}
    return {
        "Id": image.id,
        "RepoTags": [reference.familiar(t) for t in service.records.tags_of(image.id)],
        "RepoDigests": [reference.familiar(d) for d in service.records.repo_digests_of(image.id)],
        "Parent": image.parent or "",
        "Comment": value.get("comment", ""),
        "Created": value.get("created") or ZERO_TIME,
        "Container": value.get("container", ""),
        "ContainerConfig": docker_config(value.get("container_config")),
        "DockerVersion": value.get("docker_version", ""),
        "Author": value.get("author", ""),
        "Config": docker_config(value.get("config")),
        "Architecture": value.get("architecture", ""),
        **({"Variant": value["variant"]} if value.get("variant") else {}),
        "Os": value.get("os", ""),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": graph,
        "RootFS": {"Type": "layers", "Layers": config.diff_ids},
        "Metadata": {"LastTagTime": image.last_tag_time or ZERO_TIME},
    }


def history(service: ImageService, image: ImageRecord) -> list[dict[str, Any]]:
    """Newest first; the top entry carries the image id and tags, the others '<missing>' as Docker shows."""
    config = service.config_of(image)
    diff_ids = config.diff_ids
    chains = chain_ids(diff_ids)
    sizes = {s.key: s.size for s in service.store.snapshots.chain(image.chain_id)} if image.chain_id else {}
    entries = config.history or [{"created": config.created, "created_by": ""} for _ in diff_ids]
    rows = []
    layer = 0
    for entry in entries:
        size = 0
        if not entry.get("empty_layer") and layer < len(diff_ids):
            size = sizes.get(chains[layer], 0)
            layer += 1
        rows.append({
            "Id": "<missing>",
            "Created": int(parse_rfc3339(entry.get("created")) or 0),
            "CreatedBy": entry.get("created_by", ""),
            "Tags": None,
            "Size": size,
            "Comment": entry.get("comment", ""),
        })
    rows.reverse()
    if rows:
        rows[0]["Id"] = image.id
        tags = [reference.familiar(t) for t in service.records.tags_of(image.id)]
        rows[0]["Tags"] = tags or None
    return rows


def summaries(service: ImageService) -> list[dict[str, Any]]:
    """GET /images/json: one entry per image."""
    tags = service.records.all_tags()
    digests = service.records.all_repo_digests()
    out = []
    for image in service.records.all():
        out.append({
            "Containers": -1,
            "Created": int(parse_rfc3339(image.created) or image.added),
            "Id": image.id,
            "Labels": None,
            "ParentId": image.parent or "",
            "RepoDigests": [reference.familiar(d) for d in digests.get(image.id, [])] or None,
            "RepoTags": [reference.familiar(t) for t in tags.get(image.id, [])] or None,
            "SharedSize": -1,
            "Size": image.size,
            "VirtualSize": image.size,
        })
    return out
