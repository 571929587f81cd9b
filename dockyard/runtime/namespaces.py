"""Namespaces from the spec's `linux.namespaces`: new ones are unshared, ones with a `path` are joined.

The pid namespace is special: unshare/setns of CLONE_NEWPID only affects children, so the runtime's forking
thread changes its own "pid namespace for children", forks the init straight into it (making the caller the
init's parent, hence its reaper), and switches back. Every other namespace is entered by the init itself.
"""

from __future__ import annotations

import os
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.runtime import syscalls as sc

FLAGS = {
    "pid": sc.CLONE_NEWPID, "network": sc.CLONE_NEWNET, "mount": sc.CLONE_NEWNS, "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS, "user": sc.CLONE_NEWUSER, "cgroup": sc.CLONE_NEWCGROUP, "time": sc.CLONE_NEWTIME,
}
PROC_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts", "user": "user",
              "cgroup": "cgroup", "time": "time"}
# setns order for joining: user first (it grants rights over the others), mount last (it changes our root).
JOIN_ORDER = ("user", "ipc", "uts", "network", "cgroup", "time", "pid", "mount")


class Plan:
    def __init__(self) -> None:
        self.new: set[str] = set()  # types to unshare
        self.join: dict[str, str] = {}  # type -> path

    @classmethod
    def from_spec(cls, items: list[dict[str, Any]] | None) -> Plan:
        plan = cls()
        for ns in items or ():
            kind = ns.get("type")
            if kind not in FLAGS:
                raise InvalidArgument(f"unknown namespace type {kind!r}")
            if kind in plan.new or kind in plan.join:
                raise InvalidArgument(f"namespace {kind!r} listed twice")
            if kind == "user":
                raise InvalidArgument("user namespaces are not supported by dockyard's runtime yet")
            if ns.get("path"):
                plan.join[kind] = ns["path"]
            else:
                plan.new.add(kind)
        return plan

    def has(self, kind: str) -> bool:
        return kind in self.new or kind in self.join

    def unshare_flags(self, exclude: tuple[str, ...] = ("pid",)) -> int:
        flags = 0
        for kind in self.new:
            if kind not in exclude:
                flags |= FLAGS[kind]
        return flags


IPC_SYSCTLS = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax",
               "kernel.shmmni", "kernel.shm_rmid_forced"}
UTS_SYSCTLS = {"kernel.domainname", "kernel.hostname"}


def check_sysctls(sysctl: dict[str, str] | None, plan: Plan) -> None:
    """Only sysctls of namespaces the container owns may be set: anything else would change the host."""
    for key in sysctl or {}:
        name = key.replace("/", ".")
        if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
            needed = "ipc"
        elif name.startswith("net."):
            needed = "network"
        elif name in UTS_SYSCTLS:
            needed = "uts"
        else:
            raise InvalidArgument(f"sysctl {key!r} is not in a separate kernel namespace")
        if not plan.has(needed):
            raise InvalidArgument(f"sysctl {key!r} needs a private {needed} namespace")
        if needed in plan.join and _is_host_namespace(plan.join[needed], needed):
            raise InvalidArgument(f"sysctl {key!r} is not allowed in the host's {needed} namespace")


def _is_host_namespace(path: str, kind: str) -> bool:
    """The runtime's own namespace (or init's, when we may look at it) counts as the host's."""
    try:
        target = os.stat(path)
    except OSError:
        return False
    for ref in (f"/proc/self/ns/{PROC_NAMES[kind]}", f"/proc/1/ns/{PROC_NAMES[kind]}"):
        try:
            st = os.stat(ref)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False


def open_ns(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise InvalidArgument(f"cannot open namespace {path}: {e.strerror}") from None


def join_paths(join: dict[str, str], skip: tuple[str, ...] = ("pid",)) -> None:
    """setns into each namespace given by path (all fds opened first: a path may live in a namespace we leave)."""
    fds = [(kind, open_ns(join[kind])) for kind in JOIN_ORDER if kind in join and kind not in skip]
    try:
        for kind, fd in fds:
            sc.setns(fd, FLAGS[kind])
    finally:
        for _, fd in fds:
            os.close(fd)


class PidNamespaceForChildren:
    """Context manager: while inside, this thread's children are born in a new (or given) pid namespace."""

    def __init__(self, new: bool, path: str | None) -> None:
        self.new, self.path = new, path
        self._saved: int | None = None

    def __enter__(self) -> PidNamespaceForChildren:
        if not self.new and not self.path:
            return self
        self._saved = os.open("/proc/thread-self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if self.path:
                fd = open_ns(self.path)
                try:
                    sc.setns(fd, sc.CLONE_NEWPID)
                finally:
                    os.close(fd)
            else:
                sc.unshare(sc.CLONE_NEWPID)
        except BaseException:
            os.close(self._saved)
            self._saved = None
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._saved is not None:
            try:
                sc.setns(self._saved, sc.CLONE_NEWPID)
            finally:
                os.close(self._saved)
