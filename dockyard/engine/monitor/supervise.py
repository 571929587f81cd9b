"""Starting a container under the monitor, and cleaning up after its init exits."""

from __future__ import annotations

import os

from dockyard import linux
from dockyard.engine.container_spec import spec_for
from dockyard.engine.container_store import ContainerRecord
from dockyard.engine.monitor.logs import JsonLogWriter, parse_size


class Launched:
    """A started container's process and the host ends of its stdio."""

    def __init__(self, pid: int, stdout: int | None, stderr: int | None, stdin: int | None, pty: int | None,
                 log: JsonLogWriter) -> None:
        self.pid, self.stdout, self.stderr, self.stdin, self.pty, self.log = pid, stdout, stderr, stdin, pty, log


def runtime_root(engine) -> str:
    return os.path.join(str(engine.run_root), "runtime")


def runtime_of(engine, record: ContainerRecord):
    """The OCI runtime a container was created for (HostConfig.Runtime: dockyard or runc)."""
    from dockyard.engine.monitor.runtimes import runtime_for

    return runtime_for(record.data["HostConfig"].get("Runtime"), runtime_root(engine))


def mount_rootfs(engine, record: ContainerRecord) -> str:
    services = engine.containers
    bundle = services.bundle_dir(record.id)
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(rootfs, exist_ok=True)
    if not linux.is_mountpoint(rootfs):
        from dockyard.engine.rootfs_lock import rootfs_lock

        snapshots = engine.store.snapshots
        with rootfs_lock(services.container_dir(record.id), record.id, wait=False):  # not while cp writes into it
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
                # Through our own fd (cp is another process: /proc/<our pid>, not /proc/self).
                engine.volumes.populate(mount["Name"], f"/proc/{os.getpid()}/fd/{fd}")
            finally:
                os.close(fd)
    finally:
        os.close(root)


def launch(engine, record: ContainerRecord, console_size: tuple[int, int] | None = None) -> Launched:
    """Mount, write the spec, create and start the container; returns its init's pid and stdio fds."""
    from dockyard.runtime.spec import write_bundle

    data = record.data
    config, host = data["Config"], data["HostConfig"]
    oci = runtime_of(engine, record)
    bundle = engine.containers.bundle_dir(record.id)
    oci.delete(record.id)  # whatever a previous run left
    rootfs = mount_rootfs(engine, record)
    _populate_volumes(engine, record, rootfs)
    files = {"/etc/hostname": data["HostnamePath"], "/etc/hosts": data["HostsPath"],
             "/etc/resolv.conf": data["ResolvConfPath"]}
    try:
        netns, plumb = engine.networks.attach(record)
        spec = spec_for(data, rootfs, files, netns)
        if _sysctls_see_interfaces(spec):
            plumb()  # then the interfaces must exist before the init writes those sysctls
            plumb = None
    except BaseException:
        cleanup(engine, record)  # nothing half-made stays: the network, the rootfs mount
        raise
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
            pid, pty = _create_with_console(oci, record.id, bundle, spec, plumb)
            if console_size:
                set_window_size(pty, *console_size)
            stdout = stderr = stdin = None
        else:
            pty = None
            stdin_r, stdin = os.pipe() if config.get("OpenStdin") else (os.open(os.devnull, os.O_RDONLY), None)
            stdout, stdout_w = os.pipe()
            stderr, stderr_w = os.pipe()
            parent_ends += [fd for fd in (stdin, stdout, stderr) if fd is not None]
            child_ends += [stdin_r, stdout_w, stderr_w]
            # The network's plumbing overlaps the init's setup: ~1.5 ms of every start, on the other CPU.
            pid = oci.create(record.id, bundle, spec, stdio=(stdin_r, stdout_w, stderr_w), meanwhile=plumb)
        oci.start(record.id)
    except BaseException:
        log.close()
        for fd in parent_ends:
            os.close(fd)
        cleanup(engine, record)
        raise
    finally:
        for fd in child_ends:
            os.close(fd)
    for fd in (stdout, stderr, stdin, pty):
        if fd is not None:
            os.set_blocking(fd, False)
    return Launched(pid, stdout, stderr, stdin, pty, log)


def set_window_size(pty: int, rows: int, cols: int) -> None:
    import fcntl
    import struct
    import termios

    fcntl.ioctl(pty, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _create_with_console(oci, container_id: str, bundle: str, spec: dict, meanwhile) -> tuple[int, int]:
    from dockyard.engine.monitor.console import with_terminal

    return with_terminal(lambda path: oci.create(container_id, bundle, spec, console_socket=path,
                                                 meanwhile=meanwhile))


def _sysctls_see_interfaces(spec: dict) -> bool:
    """Whether the init writes net.* sysctls, which may name the container's interfaces (net.ipv4.conf.eth0.*)
    or set defaults for interfaces made later: those need the endpoints made first, as they always were."""
    return any(key.startswith("net.") for key in ((spec.get("linux") or {}).get("sysctl") or {}))


def cleanup(engine, record: ContainerRecord) -> None:
    """After the init has exited: the runtime's state and cgroups (killing any straggler), the network, then
    the rootfs."""
    runtime_of(engine, record).delete(record.id)
    engine.networks.detach(record)
    rootfs = os.path.join(engine.containers.bundle_dir(record.id), "rootfs")
    linux.umount_if_mounted(rootfs)
