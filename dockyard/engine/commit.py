"""`commit`: a new image from a container's changes, as Docker makes it.

The image is the container's image plus one layer of what the container changed (none when it changed
nothing: Docker records an empty layer in the history only). Its config is the `--change` instructions merged
over the container's Config the way Docker's commit merges them; `container`, `container_config` and
`Parent` say where it came from. A running container is paused while its layer is read, unless asked not to.
"""

from __future__ import annotations

import copy
from typing import Any

from dockyard.engine.container_store import ContainerRecord
from dockyard.errors import DockyardError, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.store.images import ImageRecord


def _env_key(item: str) -> str:
    return item.split("=", 1)[0]


def committed_config(container: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """The changes applied to an empty config, then filled from the container's Config (moby's merge())."""
    from dockyard.image.changes import apply_changes

    user = apply_changes({}, changes)
    base = copy.deepcopy(container)
    if not user.get("User"):
        user["User"] = base.get("User") or ""
    ports = dict(user.get("ExposedPorts") or {})
    for port in base.get("ExposedPorts") or {}:
        ports.setdefault(port, {})
    if ports:
        user["ExposedPorts"] = ports
    env = list(user.get("Env") or [])
    keys = {_env_key(e) for e in env}
    user["Env"] = env + [e for e in base.get("Env") or [] if _env_key(e) not in keys] or None
    labels = dict(base.get("Labels") or {})
    labels.update(user.get("Labels") or {})
    user["Labels"] = labels
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            user["Cmd"] = base.get("Cmd")
        if user.get("Entrypoint") is None:
            user["Entrypoint"] = base.get("Entrypoint")
    elif "Cmd" not in user:
        user["Cmd"] = None  # a new ENTRYPOINT drops the old CMD, as in a Dockerfile
    for key in ("Healthcheck", "WorkingDir", "StopSignal", "OnBuild", "Shell"):
        if not user.get(key) and base.get(key):
            user[key] = base[key]
    volumes = dict(base.get("Volumes") or {})
    volumes.update(user.get("Volumes") or {})
    user["Volumes"] = volumes or None
    user.setdefault("WorkingDir", "")
    return user


def _history_entry(created: str, container: dict[str, Any], author: str, comment: str, empty: bool) -> dict:
    entry: dict[str, Any] = {"created": created}
    if author:
        entry["author"] = author
    entry["created_by"] = " ".join(container.get("Cmd") or [])
    if comment:
        entry["comment"] = comment
    if empty:
        entry["empty_layer"] = True
    return entry


def commit_container(engine, record: ContainerRecord, tag: str | None = None, author: str = "",
                     comment: str = "", changes: list[str] | None = None, pause: bool = True) -> ImageRecord:
    from dockyard.image import reference

    ref = reference.parse(tag) if tag else None
    if ref is not None and ref.digest is not None:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {tag}")
    images = engine.images
    parent = images.records.find(record.image_id)
    if parent is None:
        raise NotFound(f"the image {record.image_id} of container {record.name} no longer exists")
    config = committed_config(record.data["Config"], list(changes or []))  # bad changes fail before any work
    paused_here = False
    if pause and record.running and not record.state.get("Paused"):
        engine.monitor().request({"op": "pause", "id": record.id})
        paused_here = True
    try:
        return _make_image(engine, record, parent, ref, config, author, comment)
    finally:
        if paused_here:
            try:
                engine.monitor().request({"op": "unpause", "id": record.id})
            except DockyardError:
                pass  # it stopped meanwhile (a stopped container is not paused): the image is made all the same


def _make_image(engine, record: ContainerRecord, parent, ref, config: dict, author: str,
                comment: str) -> ImageRecord:
    from dockyard.engine.container_changes import write_layer
    from dockyard.image.model import OCI_LAYER, Descriptor, new_config
    from dockyard.timeutil import rfc3339

    images = engine.images
    store = engine.store
    parent_config = images.config_of(parent)
    layers = [(layer, diff_id) for layer, diff_id in zip(images.manifest_of(parent).layers, parent_config.diff_ids)]
    with store.lease() as lease:
        with store.blobs.writer(on_verified=lease.claim_blob) as writer:
            changed = write_layer(engine, record, writer)
            if changed:
                digest = writer.commit()
                # Stored uncompressed, so the blob's digest is also the layer's diff id.
                layers.append((Descriptor(OCI_LAYER, digest, writer.size), digest))
        created = rfc3339()
        history = parent_config.history + [_history_entry(created, record.data["Config"], author, comment,
                                                           empty=not changed)]
        extra: dict[str, Any] = {"container": record.id, "container_config": record.data["Config"]}
        if comment:
            extra["comment"] = comment
        config_raw = new_config([diff_id for _, diff_id in layers], config, history, created, author=author,
                                extra=extra)
        return images.create_image(lease, layers, config_raw, [ref] if ref else [], parent=parent.id)
