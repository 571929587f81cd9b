"""`container prune`: remove every container that is not running (created, exited or dead)."""

from __future__ import annotations

from dockyard.engine.container_store import ContainerRecord
from dockyard.label_filters import labels_match


def prunable(record: ContainerRecord, until: float | None, labels: list[str], not_labels: list[str]) -> bool:
    state = record.state
    if state.get("Running") or state.get("Paused") or state.get("Restarting"):
        return False
    if until is not None and record.created >= until:
        return False
    return labels_match(record.data["Config"].get("Labels") or {}, labels, not_labels)


def prune_containers(engine, until: float | None = None, labels: list[str] | None = None,
                     not_labels: list[str] | None = None) -> tuple[list[str], int]:
    """Remove the stopped containers that pass the filters; returns (their ids, bytes of writable layers freed)."""
    from dockyard.errors import DockyardError
    from dockyard.fsutil import tree_size

    snapshots = engine.store.snapshots
    removed, reclaimed = [], 0
    for record in engine.containers.all():
        if not prunable(record, until, labels or [], not_labels or []):
            continue
        snap = snapshots.find(f"container/{record.id}")
        size = tree_size(snapshots.fs(snap)) if snap is not None else 0
        try:
            fresh = engine.containers.get(record.id)
            if not prunable(fresh, until, labels or [], not_labels or []):
                continue  # started meanwhile
            engine.containers.destroy(fresh, volumes=False)
        except DockyardError:
            continue  # removed meanwhile
        removed.append(record.id)
        reclaimed += size
    return removed, reclaimed
