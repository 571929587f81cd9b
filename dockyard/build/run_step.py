"""Running a RUN step: a container of the step's image, driven in-process by our OCI runtime.

The build process is the container init's parent: it creates and starts it with the step's argv, environment,
user, working directory and mounts, streams its output (stdout and stderr on one pipe, in order), and reaps
it. The init dies with the build (PDEATHSIG), and the pid namespace with the init, so a service started by
one RUN never survives into the next. Docker's defaults apply otherwise (capabilities, seccomp, masked paths).

Mount targets the image lacks (/etc/hosts in busybox, /proc in a scratch image, a --mount target) are made by
the runtime as empty stubs in the writable layer; `StubCleaner` removes them afterwards, with the copies of
their parent directories that overlayfs made only to hold them, so they never end up in the layer.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dockyard.build.network import HOSTNAME, RunNetwork
from dockyard.build.sandbox import Sandbox
from dockyard.errors import DockyardError
from dockyard.runtime import syscalls

CGROUP_PARENT = "/dockyard-build"  # RUN containers' cgroups: <hierarchy>/dockyard-build/<container id>
_IN_ROOT = syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
TAIL_BYTES = 4096


class RunFailed(DockyardError):
    """A RUN command exited non-zero: the build stops with its exit code."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class RunSpec:
    argv: list[str]
    env: list[str]
    user: str  # the image's User ("" = root)
    workdir: str
    network: RunNetwork
    mounts: list[dict[str, Any]] = field(default_factory=list)  # extra OCI mounts (RUN --mount, heredoc files)


Sink = Callable[[bytes], None]


def run_container(rootfs: str, spec: RunSpec, sandbox: Sandbox, output: Sink, *, cgroup_parent: str,
                  name: str) -> int:
    """Run the step's process in `rootfs` (a mounted writable snapshot); returns its exit code."""
    from dockyard.runtime import container, users
    from dockyard.runtime.spec import SpecOptions, generate_spec

    user = users.resolve(rootfs, spec.user or None)
    _make_workdir(rootfs, spec.workdir, user.uid, user.gid)
    files_dir = sandbox.new_dir("etc")
    mounts = []
    for file_name, content in (("hosts", spec.network.hosts), ("resolv.conf", spec.network.resolv_conf)):
        path = os.path.join(files_dir, file_name)
        with open(path, "w") as f:
            f.write(content)
        mounts.append({"destination": f"/etc/{file_name}", "type": "bind", "source": path,
                       "options": ["rbind", "rprivate"]})
    mounts += spec.mounts
    namespaces: dict[str, str | None] = {}
    if spec.network.namespace is None:
        namespaces["network"] = None
    elif spec.network.namespace:
        namespaces["network"] = spec.network.namespace
    cid = name
    options = SpecOptions(args=spec.argv, env=spec.env, cwd=spec.workdir or "/", uid=user.uid, gid=user.gid,
                          additional_gids=user.additional_gids, hostname=HOSTNAME, mounts=mounts,
                          namespaces=namespaces, cgroups_path=f"{cgroup_parent}/{cid}")
    oci = generate_spec(options)
    oci["root"]["path"] = rootfs
    bundle = sandbox.new_dir("bundle")
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    pid = 0
    try:
        pid = container.create(cid, bundle, sandbox.state_root, stdio=(null, write_end, write_end), config=oci,
                               seccomp_cache=sandbox.seccomp_cache, die_with_parent=True)
        os.close(write_end)
        write_end = -1
        container.start(cid, sandbox.state_root)
        while chunk := os.read(read_end, 65536):
            output(chunk)
        _, status = os.waitpid(pid, 0)
        pid = 0
        return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)
    finally:
        for fd in (read_end, write_end, null):
            if fd >= 0:
                os.close(fd)
        if pid:
            _kill(pid)
        try:
            container.delete(cid, sandbox.state_root, force=True)
        except DockyardError:
            pass


def _kill(pid: int) -> None:
    import signal

    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _make_workdir(rootfs: str, cwd: str, uid: int, gid: int) -> None:
    """A missing working directory is made, owned by the step's user (Docker does the same)."""
    from dockyard.runtime import paths

    root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.close(paths.open_in_root(root, cwd or "/", os.O_PATH | os.O_DIRECTORY))
        except FileNotFoundError:
            fd = paths.mkdir_all(root, cwd)
            os.chown(f"/proc/self/fd/{fd}", uid, gid)
            os.close(fd)
        except NotADirectoryError:
            raise DockyardError(f"working directory {cwd} is not a directory in the image") from None
    finally:
        os.close(root)


# -- mount stubs --------------------------------------------------------------------------------------------------

DEFAULT_TARGETS = ("/proc", "/dev", "/sys", "/etc/hosts", "/etc/resolv.conf")


@dataclass
class _Stub:
    existing: list[str]  # the deepest existing ancestor, as a resolved path (components)
    missing: list[str]  # the components the runtime will create below it


class StubCleaner:
    """Remembers which mount targets are missing from the image before the step runs, and afterwards removes
    what the runtime made for them from the layer (an overlay upper directory, or a vfs copy)."""

    def __init__(self, rootfs: str, targets: list[str]) -> None:
        self.stubs: list[_Stub] = []
        root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for target in dict.fromkeys(targets):
                stub = _find_stub(root, rootfs, target)
                if stub is not None:
                    self.stubs.append(stub)
        finally:
            os.close(root)

    def clean(self, upper: str, lowers: list[str], overlay: bool) -> None:
        """Call with the snapshot unmounted. `lowers`: the parent's layer directories, top first."""
        if not self.stubs:
            return
        upper_fd = os.open(upper, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for stub in sorted(self.stubs, key=lambda s: len(s.existing) + len(s.missing), reverse=True):
                _remove_stub(upper_fd, stub, lowers if overlay else None)
        finally:
            os.close(upper_fd)


def _find_stub(root_fd: int, rootfs: str, target: str) -> _Stub | None:
    parts = [p for p in posixpath.normpath("/" + target).split("/") if p]
    for i in range(len(parts), -1, -1):
        rel = "/".join(parts[:i]) or "."
        try:
            fd = syscalls.openat2(root_fd, rel, os.O_PATH | os.O_CLOEXEC, 0, _IN_ROOT)
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                continue
            return None  # a loop or worse: leave it to the runtime to refuse
        try:
            if i == len(parts):
                return None  # exists: nothing will be created
            real = os.readlink(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)
        prefix = os.path.realpath(rootfs)
        if real != prefix and not real.startswith(prefix + "/"):
            return None
        existing = [p for p in real[len(prefix):].split("/") if p]
        return _Stub(existing, parts[i:])
    return None


def _remove_stub(upper_fd: int, stub: _Stub, lowers: list[str] | None) -> None:
    path = stub.existing + stub.missing
    # The made components, deepest first: only empty files and empty directories are ours to remove.
    for depth in range(len(path), len(stub.existing), -1):
        if not _remove_if_empty(upper_fd, path[:depth]):
            return
    if lowers is None:
        return
    # Their ancestors, copied up by overlayfs only to hold the stub: gone if empty and unchanged.
    for depth in range(len(stub.existing), 0, -1):
        parts = stub.existing[:depth]
        lower = _lower_stat(lowers, parts)
        if lower is None or not _restore_copy_up(upper_fd, parts, lower):
            return


def _open_beneath(dir_fd: int, parts: list[str], flags: int = os.O_PATH) -> int:
    return syscalls.openat2(dir_fd, "/".join(parts) or ".", flags | os.O_CLOEXEC, 0,
                            _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS)


def _remove_if_empty(upper_fd: int, parts: list[str]) -> bool:
    try:
        parent = _open_beneath(upper_fd, parts[:-1])
    except OSError:
        return True  # not in the upper directory: nothing was made there
    try:
        try:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return True
        if stat.S_ISDIR(st.st_mode):
            try:
                os.rmdir(parts[-1], dir_fd=parent)
            except OSError:
                return False  # the step put something in it
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(parts[-1], dir_fd=parent)
        else:
            return False
        return True
    finally:
        os.close(parent)


def _lower_stat(lowers: list[str], parts: list[str]) -> os.stat_result | None:
    for lower in lowers:
        try:
            fd = os.open(lower, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            found = _open_beneath(fd, parts)
        except OSError:
            continue
        finally:
            os.close(fd)
        try:
            return os.fstat(found)
        finally:
            os.close(found)
    return None


def _restore_copy_up(upper_fd: int, parts: list[str], lower: os.stat_result) -> bool:
    """Remove an empty copied-up directory whose owner and mode are the lower one's; True if removed."""
    try:
        parent = _open_beneath(upper_fd, parts[:-1])
    except OSError:
        return False
    try:
        try:
            st = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISDIR(st.st_mode) or (st.st_mode, st.st_uid, st.st_gid) != (
                lower.st_mode, lower.st_uid, lower.st_gid):
            return False
        try:
            if os.getxattr(f"/proc/self/fd/{parent}/{parts[-1]}", "trusted.overlay.opaque",
                           follow_symlinks=False) == b"y":
                return False
        except OSError:
            pass
        try:
            os.rmdir(parts[-1], dir_fd=parent)
        except OSError:
            return False
        return True
    finally:
        os.close(parent)
