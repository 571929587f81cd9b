"""A running container's init process, found safely whatever runtime started it (ours or runc).

The pid in the container's record could have been recycled since the container died, and trusting it would
hand cp the host's root or stats another process's numbers. So the process is pinned by an fd on /proc/<pid>
(it stays bound to that process even if the pid is reused) and checked through that fd to live in the
container's own cgroup, which only the container's processes can be in.
"""

from __future__ import annotations

import os

from dockyard.engine.container_store import ContainerRecord

PROC_DIR = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def _read(proc_fd: int, name: str) -> str:
    with open(os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=proc_fd)) as f:
        return f.read()


def in_container_cgroup(cgroup_text: str, container_id: str) -> bool:
    """/proc/<pid>/cgroup names a cgroup of this container (cgroupsPath /dockyard/<id>, or any path ending so)."""
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        if container_id in path.split("/"):
            return True
    return False


def open_init(record: ContainerRecord) -> int | None:
    """An fd on /proc/<pid> of the container's init, or None when it is not (or no longer) running."""
    pid = int(record.state.get("Pid") or 0)
    if not record.running or pid <= 0:
        return None
    try:
        proc = os.open(f"/proc/{pid}", PROC_DIR)
    except FileNotFoundError:
        return None
    try:
        if in_container_cgroup(_read(proc, "cgroup"), record.id):
            return proc
    except (FileNotFoundError, ProcessLookupError):
        pass
    os.close(proc)
    return None


def cgroup_dirs(proc_fd: int) -> list[str]:
    """The process's cgroup directories, v1 hierarchies first (on a hybrid host v2 has no controllers)."""
    from dockyard.runtime.cgroups import hierarchies

    membership: dict[tuple[int, frozenset[str]], str] = {}
    for line in _read(proc_fd, "cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        key = (2, frozenset()) if controllers == "" else (1, frozenset(controllers.split(",")))
        membership[key] = path
    dirs = []
    for h in sorted(hierarchies(), key=lambda h: h.version):
        path = membership.get((h.version, h.controllers))
        if path is None:
            continue
        if h.mount_root != "/" and path.startswith(h.mount_root):
            path = path[len(h.mount_root):] or "/"
        dirs.append(os.path.join(h.mountpoint, path.lstrip("/")))
    return dirs
