"""Starting a container under the monitor, and cleaning up after its init exits."""

from __future__ import annotations

import os
import socket

from dockyard import linux
from dockyard.engine.container_spec import spec_for
from dockyard.engine.container_store import ContainerRecord
from dockyard.engine.monitor.logs import JsonLogWriter, parse_size
from dockyard.errors import DockyardError, HostError


class Launched:
    """A started container's process and the host ends of its stdio."""

    def __init__(self, pid: int, stdout: int | None, stderr: int | None, stdin: int | None, pty: int | None,
                 log: JsonLogWriter) -> None:
        self.pid, self.stdout, self.stderr, self.stdin, self.pty, self.log = pid, stdout, stderr, stdin, pty, log


def runtime_root(engine) -> str:
    return os.path.join(str(engine.run_root), "runtime")


def mount_rootfs(engine, record: ContainerRecord) -> str:
    services = engine.containers
    bundle = services.bundle_dir(record.id)
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    if not linux.is_mountpoint(rootfs):
        snapshots = engine.store.snapshots
        snapshots.mount(snapshots.get(f"container/{record.id}"), rootfs)
    return rootfs


def _populate_volumes(engine, record: ContainerRecord, rootfs: str) -> None:
    from dockyard.runtime import paths

    root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for mount in record.data.get("Mounts") or []:
            if mount["Type"] != "volume" or "nocopy" in (mount.get("Mode") or ""):
                continue
            try:
                fd = paths.open_in_root(root, mount["Destination"], os.O_PATH | os.O_DIRECTORY)
            except OSError:
                continue  # nothing in the image there
            try:
                engine.volumes.populate(mount["Name"], f"/proc/self/fd/{fd}")
            finally:
                os.close(fd)
    finally:
        os.close(root)


def launch(engine, record: ContainerRecord, console_size: tuple[int, int] | None = None) -> Launched:
    """Mount, write the spec, create and start the container; returns its init's pid and stdio fds."""
    from dockyard import runtime
    from dockyard.runtime.spec import write_bundle

    data = record.data
    config, host = data["Config"], data["HostConfig"]
    state_root = runtime_root(engine)
    bundle = engine.containers.bundle_dir(record.id)
    _delete_stale(record.id, state_root)
    rootfs = mount_rootfs(engine, record)
    _populate_volumes(engine, record, rootfs)
    files = {"/etc/hostname": data["HostnamePath"], "/etc/hosts": data["HostsPath"],
             "/etc/resolv.conf": data["ResolvConfPath"]}
    netns = None
    mode = host.get("NetworkMode") or "default"
    if mode.startswith("container:"):
        other = engine.containers.get(mode.split(":", 1)[1])
        if not other.running:
            raise DockyardError(f"cannot join network of a non running container: {other.id}")
        netns = f"/proc/{other.state['Pid']}/ns/net"
    spec = spec_for(data, rootfs, files, netns)
    spec["root"]["path"] = "rootfs"
    if config.get("Tty") and console_size:
        spec["process"]["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    write_bundle(bundle, spec)
    log_config = (host.get("LogConfig") or {}).get("Config") or {}
    log = JsonLogWriter(data["LogPath"], parse_size(log_config["max-size"]) if log_config.get("max-size") else None,
                        int(log_config.get("max-file", "1")))
    parent_ends: list[int] = []
    child_ends: list[int] = []
    try:
        if config.get("Tty"):
            pid, pty = _create_with_console(record.id, bundle, state_root, spec)
            stdout = stderr = stdin = None
        else:
            pty = None
            stdin_r, stdin = os.pipe() if config.get("OpenStdin") else (os.open(os.devnull, os.O_RDONLY), None)
            stdout, stdout_w = os.pipe()
            stderr, stderr_w = os.pipe()
            parent_ends += [fd for fd in (stdin, stdout, stderr) if fd is not None]
            child_ends += [stdin_r, stdout_w, stderr_w]
            pid = runtime.create(record.id, bundle, state_root, stdio=(stdin_r, stdout_w, stderr_w), config=spec,
                                 seccomp_cache=os.path.join(state_root, ".seccomp"))
        runtime.start(record.id, state_root)
    except BaseException:
        log.close()
        for fd in parent_ends:
            os.close(fd)
        cleanup(engine, record.id)
        raise
    finally:
        for fd in child_ends:
            os.close(fd)
    for fd in (stdout, stderr, stdin, pty):
        if fd is not None:
            os.set_blocking(fd, False)
    return Launched(pid, stdout, stderr, stdin, pty, log)


def _create_with_console(container_id: str, bundle: str, state_root: str, spec: dict) -> tuple[int, int]:
    """Create with a terminal: the runtime hands the pty master over a unix socket; returns (pid, master)."""
    from dockyard import runtime
    from dockyard.engine.monitor.protocol import MAX_FDS

    path = os.path.join(bundle, "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if os.path.exists(path):
            os.unlink(path)
        listener.bind(path)
        listener.listen(1)
        pid = runtime.create(container_id, bundle, state_root, console_socket=path, config=spec,
                             seccomp_cache=os.path.join(state_root, ".seccomp"))
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1024, MAX_FDS)
        if not fds:
            raise HostError("the runtime did not send the container's terminal")
        return pid, fds[0]
    finally:
        listener.close()
        if os.path.exists(path):
            os.unlink(path)


def _delete_stale(container_id: str, state_root: str) -> None:
    from dockyard import runtime
    from dockyard.errors import NotFound

    try:
        runtime.delete(container_id, state_root, force=True)
    except NotFound:
        pass


def cleanup(engine, container_id: str) -> None:
    """After the init has exited: the runtime's state and cgroups, then the rootfs mount."""
    _delete_stale(container_id, runtime_root(engine))
    rootfs = os.path.join(engine.containers.bundle_dir(container_id), "rootfs")
    linux.umount_if_mounted(rootfs)
