"""A container's file system as a directory fd: what `cp`, `export` and the archive endpoints work on.

* A running container is seen as its own processes see it, through /proc/<init pid>/root: its volumes, binds
  and tmpfs included (Docker mounts the volumes for cp too). The pid is pinned and checked first
  (engine/container_proc.py), so a recycled pid can never hand us the host's root.
* A stopped container is seen through a detached mount of its snapshot (see engine/detached.py), with its
  volumes and binds attached where the kernel allows it: it exists only as long as the fd, so no mount is
  ever left behind, whatever happens to the command.

Every path below the fd is then resolved with openat2(RESOLVE_IN_ROOT) (runtime/paths.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from dockyard.engine.container_store import ContainerRecord
from dockyard.errors import NotFound

DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def _process_root(record: ContainerRecord) -> int | None:
    """An fd on the root of the container's init, or None when it is not (or no longer) running."""
    from dockyard.engine.container_proc import open_init

    proc = open_init(record)
    if proc is None:
        return None
    try:
        return os.open("root", DIR_PATH, dir_fd=proc)
    except (FileNotFoundError, ProcessLookupError):
        return None
    finally:
        os.close(proc)


def _overlay_options(engine, record: ContainerRecord, writable: bool) -> list[tuple[str, str]]:
    snapshots = engine.store.snapshots
    _, _, _, data = snapshots.mount_options(snapshots.get(f"container/{record.id}"))
    options = [tuple(item.split("=", 1)) for item in (data or "").split(",") if "=" in item]
    if writable:
        return options  # type: ignore[return-value]
    # Read-only: the writable layer becomes the top lower layer, so the upper and work dirs are not touched.
    values = dict(options)
    lowers = f"{values.pop('upperdir')}:{values['lowerdir']}"
    values.pop("workdir", None)
    values["lowerdir"] = lowers
    return list(values.items())


def _snapshot_root(engine, record: ContainerRecord, writable: bool) -> int:
    from dockyard.engine import detached
    from dockyard.store.snapshots import OVERLAY

    snapshots = engine.store.snapshots
    snap = snapshots.find(f"container/{record.id}")
    if snap is None:
        raise NotFound(f"container {record.id} has no file system (it is being removed)")
    read_only = not writable or bool(record.data.get("HostConfig", {}).get("ReadonlyRootfs"))
    if snapshots.driver == OVERLAY:
        return detached.mount_fs("overlay", _overlay_options(engine, record, writable), read_only=read_only)
    return detached.clone_tree(snapshots.fs(snap), read_only=read_only)


def _attach_mounts(root: int, record: ContainerRecord) -> None:
    """Volumes and binds onto the detached root, parents first, where their targets exist.

    Best effort: a kernel older than 6.15 cannot attach beneath a detached mount; cp then sees the container's
    own layer at those paths.
    """
    from dockyard.engine import detached
    from dockyard.runtime import paths

    mounts = [m for m in record.data.get("Mounts") or [] if m.get("Type") in ("volume", "bind") and m.get("Source")]
    # The files the engine writes for every container, mounted over the image's at start (as Docker's cp sees).
    for key, target in (("HostnamePath", "/etc/hostname"), ("HostsPath", "/etc/hosts"),
                        ("ResolvConfPath", "/etc/resolv.conf")):
        if record.data.get(key) and os.path.exists(record.data[key]):
            mounts.append({"Source": record.data[key], "Destination": target, "RW": True})
    for mount in sorted(mounts, key=lambda m: paths.clean(m["Destination"]).count("/")):
        try:
            target = paths.open_in_root(root, mount["Destination"], os.O_PATH)
        except OSError:
            continue  # the runtime makes missing targets at start; nothing there yet
        try:
            tree = detached.clone_tree(mount["Source"], read_only=not mount.get("RW", True))
            try:
                detached.attach(tree, target)
            finally:
                os.close(tree)
        except OSError:
            continue
        finally:
            os.close(target)


def _host_rootfs(engine, record: ContainerRecord) -> int | None:
    """The rootfs the monitor mounted in the host's namespace for a (starting or running) container, if any."""
    rootfs = os.path.join(engine.containers.bundle_dir(record.id), "rootfs")
    try:
        fd = os.open(rootfs, DIR_PATH | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    if os.fstat(fd).st_dev != os.stat(os.path.dirname(rootfs)).st_dev:
        return fd
    os.close(fd)  # a bare mount point: nothing mounted (vfs bind mounts are caught by the snapshot path)
    return None


@contextmanager
def container_root(engine, record: ContainerRecord, writable: bool = False) -> Iterator[int]:
    """An O_PATH fd on the container's `/` with its volumes, for as long as the block runs."""
    fd = _process_root(record)
    if fd is not None or not writable:
        if fd is None:
            fd = _snapshot_root(engine, record, writable=False)
            _attach_mounts(fd, record)
        try:
            yield fd
        finally:
            os.close(fd)
        return
    # Writing into a stopped container: exclude a concurrent start (rootfs_lock.py), then look again.
    from dockyard.engine.rootfs_lock import rootfs_lock

    with rootfs_lock(engine.containers.container_dir(record.id), record.id, wait=True):
        fresh = engine.containers.get(record.id)
        fd = _process_root(fresh)
        if fd is None:
            fd = _host_rootfs(engine, fresh)  # being started: its own mount is the one to write to
        if fd is None:
            fd = _snapshot_root(engine, fresh, writable=True)
            _attach_mounts(fd, fresh)
        try:
            yield fd
        finally:
            os.close(fd)


@contextmanager
def merged_root(engine, record: ContainerRecord) -> Iterator[int]:
    """An O_PATH fd on the container's own file system (image plus writable layer, no volumes): `export`."""
    # The monitor keeps a running container's rootfs mounted in the host's namespace.
    fd = _host_rootfs(engine, record) if record.running else None
    if fd is None:
        fd = _snapshot_root(engine, record, writable=False)
    try:
        yield fd
    finally:
        os.close(fd)
