"""Containers as Docker shows them: inspect documents, `ps` rows and their STATUS texts."""

from __future__ import annotations

import os
import time

from dockyard.engine.container_store import ContainerRecord
from dockyard.timeutil import human_duration, parse_rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def inspect(engine, record: ContainerRecord, size: bool = False) -> dict[str, Any]:
    data = dict(record.data)
    snapshots = engine.store.snapshots
    snap = snapshots.find(f"container/{record.id}")
    if snap is not None:
        graph = {"Name": snapshots.driver, "Data": {"UpperDir": snapshots.fs(snap)}}
        if snapshots.driver == "overlay":
            graph["Data"]["WorkDir"] = str(snapshots.dir / str(snap.id) / "work")
            graph["Data"]["MergedDir"] = os.path.join(engine.containers.bundle_dir(record.id), "rootfs")
        data["GraphDriver"] = graph
    if size:
        from dockyard.fsutil import tree_size

        data["SizeRw"] = tree_size(snapshots.fs(snap)) if snap else 0
        image = engine.images.records.find(record.image_id)
        data["SizeRootFs"] = data["SizeRw"] + (image.size if image else 0)
    return data


def status_text(state: dict[str, Any], now: float | None = None) -> str:
    """Up 2 minutes / Exited (0) 3 seconds ago / Created / Up 5 seconds (Paused) / Restarting (1) ..."""
    now = now or time.time()
    if state.get("Running"):
        started = parse_rfc3339(state.get("StartedAt")) or now
        text = f"Up {human_duration(max(0.0, now - started))}"
        return text + " (Paused)" if state.get("Paused") else text
    if state.get("Restarting"):
        finished = parse_rfc3339(state.get("FinishedAt")) or now
        return f"Restarting ({state.get('ExitCode', 0)}) {human_duration(max(0.0, now - finished))} ago"
    if state.get("Status") == "created":
        return "Created"
    if state.get("Status") == "removing":
        return "Removal In Progress"
    if state.get("Status") == "dead":
        return "Dead"
    finished = parse_rfc3339(state.get("FinishedAt"))
    if finished is None or finished < 1:
        return "Created"
    return f"Exited ({state.get('ExitCode', 0)}) {human_duration(max(0.0, now - finished))} ago"


def ports_text(data: dict[str, Any]) -> str:
    """0.0.0.0:8080->80/tcp, 443/tcp"""
    ports = (data.get("NetworkSettings") or {}).get("Ports") or {}
    parts = []
    for port, bindings in sorted(ports.items()):
        if not bindings:
            parts.append(port)
            continue
        for b in bindings:
            parts.append(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{port}")
    return ", ".join(parts)


def summary(engine, record: ContainerRecord) -> dict[str, Any]:
    """GET /containers/json: one entry."""
    data = record.data
    config = data["Config"]
    command = " ".join([data.get("Path") or ""] + list(data.get("Args") or [])).strip()
    return {
        "Id": record.id,
        "Names": ["/" + record.name],
        "Image": config.get("Image") or record.image_id,
        "ImageID": record.image_id,
        "Command": command,
        "Created": int(record.created),
        "Ports": [],
        "Labels": config.get("Labels") or {},
        "State": record.state.get("Status"),
        "Status": status_text(record.state),
        "HostConfig": {"NetworkMode": data["HostConfig"].get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": (data.get("NetworkSettings") or {}).get("Networks") or {}},
        "Mounts": data.get("Mounts") or [],
    }
