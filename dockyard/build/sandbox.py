"""A build's private scratch space: mount points, runtime state, temporary files, and their cleanup.

Everything a build mounts (step root filesystems, read-only views of stages) is mounted by the build process
itself. The CLI first moves the process into a private mount namespace (`isolate_mounts`), so whatever it
mounts is invisible outside and vanishes with the process, even after a SIGKILL. Directories are named after
the process (`<pid>-<start time>`), so the next build can tell a dead build's leftovers (a RUN container's
runtime state and cgroups, temporary files) from a live one's and remove them (`recover`). Store content
(snapshots, blobs) is not handled here: the build's lease covers it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from dockyard import linux
from dockyard.fsutil import remove_tree
from dockyard.store.store import process_start_time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.engine.monitor.client import MonitorClient, Stream


def isolate_mounts() -> None:
    """Give this process a mount namespace of its own whose mounts never propagate back to the host's.

    Call it before any thread is started (unshare(CLONE_NEWNS) applies to the calling thread's process)."""
    from dockyard.runtime import syscalls as sc

    linux.original_mount_namespace = os.open("/proc/self/ns/mnt", os.O_RDONLY | os.O_CLOEXEC)
    sc.unshare(sc.CLONE_NEWNS)
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE)


def _owner_tag() -> str:
    return f"{os.getpid()}-{process_start_time(os.getpid())}"


def _is_dead(tag: str) -> bool:
    pid, _, start = tag.partition("-")
    if not pid.isdigit():
        return False
    return str(process_start_time(int(pid))) != start


class Sandbox:
    """Scratch directories of one build: `dir` (under the run root: mount points, runtime state, small files)
    and `tmp` (under the store root, same file system as the snapshots: downloads, unpacked archives)."""

    def __init__(self, run_root: str, store_tmp: str,
                 monitor: Callable[[], MonitorClient] | None = None) -> None:
        tag = _owner_tag()
        self.monitor = monitor  # how to reach the monitor, which lends the build a bridge network
        self.networks: dict[str, Any] = {}  # RUN network mode -> the build.network.RunNetwork made for it
        self._held: list[Stream] = []
        self.dir = os.path.join(run_root, "build", tag)
        self.tmp = os.path.join(store_tmp, f"build-{tag}")
        self.state_root = os.path.join(self.dir, "runtime")
        self.seccomp_cache = os.path.join(run_root, "build", "seccomp")
        self._mounts: list[str] = []
        self._counter = 0
        for path in (self.dir, self.tmp, self.state_root, self.seccomp_cache):
            os.makedirs(path, mode=0o700, exist_ok=True)

    def new_dir(self, name: str, *, tmp: bool = False) -> str:
        """A fresh empty directory `<name>-<n>`, in `tmp` or `dir`."""
        self._counter += 1
        path = os.path.join(self.tmp if tmp else self.dir, f"{name}-{self._counter}")
        os.mkdir(path, 0o700)
        return path

    # -- mounts
    def mount(self, source: str, target: str, fstype: str | None, flags: int = 0, data: str | None = None) -> None:
        linux.mount(source, target, fstype, flags, data)
        self._mounts.append(target)

    def track(self, target: str) -> None:
        """Record a mount made by someone else (e.g. Snapshotter.mount) for cleanup."""
        self._mounts.append(target)

    def unmount(self, target: str) -> None:
        if target in self._mounts:
            self._mounts.remove(target)
        linux.umount_if_mounted(target)

    def hold(self, stream: Stream) -> None:
        """Keep a monitor connection open until the build ends (what it lent goes back when it closes)."""
        self._held.append(stream)

    def close(self) -> None:
        """Unmount what is left (innermost first), remove RUN containers' runtime state, delete the dirs."""
        while self._held:
            self._held.pop().close()
        while self._mounts:
            linux.umount_if_mounted(self._mounts.pop())
        _delete_runtime_state(self.state_root)
        _remove_unmounted(self.dir)
        remove_tree(self.tmp)


def _delete_runtime_state(state_root: str) -> None:
    try:
        ids = [name for name in os.listdir(state_root) if not name.startswith(".")]
    except FileNotFoundError:
        return
    if not ids:
        return
    from dockyard.runtime import container

    for cid in ids:
        try:
            container.delete(cid, state_root, force=True)
        except Exception:  # noqa: BLE001, S110 - cleanup goes on; the directory goes below anyway
            pass
        _remove_cgroups(cid)


def _remove_cgroups(cid: str) -> None:
    """The runtime makes a container's cgroups before it records them in its state: a build killed in between
    leaves cgroups no state names. Their paths follow from the id (see run_step.CGROUP_PARENT)."""
    from dockyard.build.run_step import CGROUP_PARENT
    from dockyard.runtime import cgroups

    try:
        dirs = cgroups.resolve_paths(f"{CGROUP_PARENT}/{cid}", cid, cgroups.hierarchies())
        cgroups.remove([d for d in dirs.values() if os.path.isdir(d)], timeout=0.5)
    except Exception:  # noqa: BLE001, S110 - best effort: an empty cgroup costs nothing
        pass


def _mounts_below(path: str) -> list[str]:
    prefix = path.rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            target = line.split()[4].decode("utf-8", "surrogateescape").replace("\\040", " ")
            if target.startswith(prefix) or target == path:
                found.append(target)
    return found


def _remove_unmounted(path: str) -> None:
    """rm -rf, but never into a mounted file system (a leaked mount would take its content with it)."""
    for target in sorted(_mounts_below(path), key=len, reverse=True):
        linux.umount_if_mounted(target)
    remove_tree(path)


def recover(run_root: str, store_tmp: str) -> int:
    """Clean up after builds that died (SIGKILL, power cut): their runtime state, cgroups, mounts and
    temporary files. Returns how many were cleaned."""
    cleaned = 0
    base = os.path.join(run_root, "build")
    try:
        tags = [t for t in os.listdir(base) if t != "seccomp"]
    except FileNotFoundError:
        tags = []
    for tag in tags:
        if _is_dead(tag):
            path = os.path.join(base, tag)
            _delete_runtime_state(os.path.join(path, "runtime"))
            _remove_unmounted(path)
            remove_tree(os.path.join(store_tmp, f"build-{tag}"))
            cleaned += 1
    try:
        leftovers = [n for n in os.listdir(store_tmp) if n.startswith("build-")]
    except FileNotFoundError:
        leftovers = []
    for name in leftovers:
        if _is_dead(name[len("build-"):]):
            remove_tree(os.path.join(store_tmp, name))
    return cleaned
