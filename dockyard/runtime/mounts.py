"""The container's filesystem: spec mounts inside the rootfs, pivot_root, read-only root, masked/readonly paths.

Called by the container init (already in its own mount namespace), in this order:
  prepare_root      make / a slave (or the spec's rootfsPropagation) and the rootfs a mount point
  mount_all         every spec mount, targets resolved inside the rootfs (see paths.py)
  pivot             pivot_root into the rootfs and detach the old root
  finalize          read-only root and read-only /dev when asked
  readonly_paths / masked_paths
"""

from __future__ import annotations

import errno
import os
import posixpath
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.runtime import paths
from dockyard.runtime import syscalls as sc

_SET = {
    "bind": sc.MS_BIND, "rbind": sc.MS_BIND | sc.MS_REC, "ro": sc.MS_RDONLY, "nosuid": sc.MS_NOSUID,
    "nodev": sc.MS_NODEV, "noexec": sc.MS_NOEXEC, "sync": sc.MS_SYNCHRONOUS, "dirsync": sc.MS_DIRSYNC,
    "mand": sc.MS_MANDLOCK, "noatime": sc.MS_NOATIME, "nodiratime": sc.MS_NODIRATIME,
    "relatime": sc.MS_RELATIME, "strictatime": sc.MS_STRICTATIME, "remount": sc.MS_REMOUNT,
    "silent": sc.MS_SILENT, "lazytime": sc.MS_LAZYTIME,
}
_CLEAR = {
    "rw": sc.MS_RDONLY, "suid": sc.MS_NOSUID, "dev": sc.MS_NODEV, "exec": sc.MS_NOEXEC, "async": sc.MS_SYNCHRONOUS,
    "nomand": sc.MS_MANDLOCK, "atime": sc.MS_NOATIME, "diratime": sc.MS_NODIRATIME, "norelatime": sc.MS_RELATIME,
    "nostrictatime": sc.MS_STRICTATIME, "loud": sc.MS_SILENT, "nolazytime": sc.MS_LAZYTIME, "defaults": 0,
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC, "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC, "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
_IGNORED = {"tmpcopyup", "idmap", "ridmap", "copy-symlink"}
# Flags a bind remount must repeat, or the kernel would clear them on the mount.
_LOCKED = sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_RDONLY | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME


class Options:
    """A mount's options split into flags, propagation changes and filesystem data."""

    def __init__(self) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.data: list[str] = []

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & sc.MS_BIND)


def parse_options(options: list[str] | None) -> Options:
    out = Options()
    for opt in options or ():
        if opt in _SET:
            out.flags |= _SET[opt]
        elif opt in _CLEAR:
            out.flags &= ~_CLEAR[opt]
        elif opt in _PROPAGATION:
            out.propagation.append(_PROPAGATION[opt])
        elif opt not in _IGNORED:
            out.data.append(opt)
    return out


class Context:
    """What the mount steps need to know about the container being built."""

    def __init__(self, rootfs: str, bundle: str, cgroup_dirs: dict[str, str], cgroupns: bool) -> None:
        self.rootfs, self.bundle, self.cgroup_dirs, self.cgroupns = rootfs, bundle, cgroup_dirs, cgroupns
        self.dev_bound = False  # /dev is a bind mount of the host's: no device nodes to create
        self.dev_readonly = False


def prepare_root(rootfs: str, propagation: str | None) -> None:
    flag = _PROPAGATION.get(propagation or "rslave")
    if flag is None:
        raise InvalidArgument(f"invalid rootfsPropagation {propagation!r}")
    sc.mount("", "/", None, flag)
    # pivot_root needs the new root to be a mount point.
    sc.mount(rootfs, rootfs, "bind", sc.MS_BIND | sc.MS_REC)
    if flag & sc.MS_SHARED:
        sc.mount("", rootfs, None, sc.MS_SHARED)


def mount_all(ctx: Context, rootfd: int, mounts: list[dict[str, Any]]) -> None:
    for m in mounts:
        dest = m.get("destination") or ""
        if not dest:
            raise InvalidArgument("mount without a destination")
        opts = parse_options(m.get("options"))
        kind = m.get("type") or ("bind" if opts.is_bind else "")
        if kind == "bind" and not opts.is_bind:
            opts.flags |= sc.MS_BIND
        if paths.clean(dest) == "dev":
            ctx.dev_bound = opts.is_bind
            if opts.flags & sc.MS_RDONLY and not opts.is_bind:
                ctx.dev_readonly = True  # nodes are made first, /dev goes read-only in finalize
                opts.flags &= ~sc.MS_RDONLY
        if kind == "cgroup":
            _mount_cgroup(ctx, rootfd, dest, opts)
        elif opts.is_bind:
            _mount_bind(ctx, rootfd, m.get("source") or "", dest, opts)
        else:
            _mount_fs(rootfd, kind, m.get("source") or kind, dest, opts)


def _mount_fs(rootfd: int, kind: str, source: str, dest: str, opts: Options) -> None:
    if kind in ("proc", "sysfs"):
        _refuse_symlink(rootfd, dest)
    fd = paths.mkdir_all(rootfd, dest)
    try:
        target = paths.fd_path(fd)
        sc.mount(source, target, kind, opts.flags & ~(sc.MS_REMOUNT), ",".join(opts.data) or None)
    finally:
        os.close(fd)
    if opts.propagation:
        _after_mount(rootfd, dest, 0, opts)


def _refuse_symlink(rootfd: int, dest: str) -> None:
    """proc and sysfs must land on a real directory of the image, not wherever a symlink points."""
    rel = paths.clean(dest)
    parent = paths.mkdir_all(rootfd, posixpath.dirname(rel))
    try:
        st = os.stat(posixpath.basename(rel), dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return
    finally:
        os.close(parent)
    if not os.path.stat.S_ISDIR(st.st_mode):
        raise InvalidArgument(f"mount destination /{rel} for proc/sysfs is not a directory")


def _mount_bind(ctx: Context, rootfd: int, source: str, dest: str, opts: Options) -> None:
    if not source:
        raise InvalidArgument(f"bind mount on {dest} has no source")
    if not os.path.isabs(source):
        source = os.path.join(ctx.bundle, source)
    try:
        is_dir = os.path.isdir(source)
        os.stat(source)
    except OSError as e:
        raise InvalidArgument(f"bind mount source {source}: {e.strerror}") from None
    fd = paths.mkdir_all(rootfd, dest) if is_dir else paths.ensure_file(rootfd, dest)
    try:
        target = paths.fd_path(fd)
        sc.mount(source, target, "bind", sc.MS_BIND | (opts.flags & sc.MS_REC))
    finally:
        os.close(fd)
    _after_mount(rootfd, dest, opts.flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT), opts)


def _after_mount(rootfd: int, dest: str, remount_flags: int, opts: Options) -> None:
    """Remount flags and propagation act on the new mount: reopen dest (the old fd names the covered dir)."""
    if not remount_flags and not opts.propagation:
        return
    fd = paths.open_in_root(rootfd, dest)
    try:
        if remount_flags:
            _remount_bind(paths.fd_path(fd), remount_flags)
        for flag in opts.propagation:
            sc.mount("", paths.fd_path(fd), None, flag)
    finally:
        os.close(fd)


def _remount_bind(target: str, flags: int) -> None:
    """Apply per-mount flags to a bind mount, keeping the ones the kernel would otherwise drop."""
    try:
        sc.mount("", target, None, sc.MS_BIND | sc.MS_REMOUNT | flags)
    except OSError as e:
        if e.errno != errno.EPERM:
            raise
        # Locked flags (e.g. nodev from a user namespace's mount) must be repeated.
        sc.mount("", target, None, sc.MS_BIND | sc.MS_REMOUNT | flags | (_statvfs_flags(target) & _LOCKED))


def _statvfs_flags(path: str) -> int:
    st = os.statvfs(path)
    mapping = {os.ST_RDONLY: sc.MS_RDONLY, os.ST_NOSUID: sc.MS_NOSUID, os.ST_NODEV: sc.MS_NODEV,
               os.ST_NOEXEC: sc.MS_NOEXEC, os.ST_NOATIME: sc.MS_NOATIME, os.ST_NODIRATIME: sc.MS_NODIRATIME,
               os.ST_RELATIME: sc.MS_RELATIME}
    return sum(ms for st_flag, ms in mapping.items() if st.f_flag & st_flag)


def _mount_cgroup(ctx: Context, rootfd: int, dest: str, opts: Options) -> None:
    """The spec's "cgroup" mount: the container's own cgroups, as runc lays them out.

    v1/hybrid: a tmpfs at dest, and under it one read-only directory per v1 hierarchy (a fresh mount rooted
    at the container's cgroup when it has a cgroup namespace, else a bind of the host's directory).
    v2: the container's cgroup2 directory itself.
    """
    from dockyard.runtime import cgroups

    items = cgroups.hierarchies()
    bind_flags = opts.flags & ~sc.MS_REMOUNT
    if cgroups.is_unified(items):
        h = items[0]
        fd = paths.mkdir_all(rootfd, dest)
        try:
            if ctx.cgroupns:
                sc.mount("cgroup2", paths.fd_path(fd), "cgroup2", bind_flags)
            else:
                sc.mount(ctx.cgroup_dirs[h.mountpoint], paths.fd_path(fd), "bind", sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(fd)
        if not ctx.cgroupns:
            _after_mount(rootfd, dest, bind_flags, Options())
        return
    fd = paths.mkdir_all(rootfd, dest)
    try:
        sc.mount("tmpfs", paths.fd_path(fd), "tmpfs", bind_flags & ~sc.MS_RDONLY, "mode=755")
    finally:
        os.close(fd)
    for h in items:
        if h.version != 1:
            continue
        sub = posixpath.join(dest, h.name)
        sfd = paths.mkdir_all(rootfd, sub)
        try:
            target = paths.fd_path(sfd)
            if ctx.cgroupns:
                sc.mount("cgroup", target, "cgroup", bind_flags, ",".join(sorted(h.controllers)))
            else:
                sc.mount(ctx.cgroup_dirs[h.mountpoint], target, "bind", sc.MS_BIND | sc.MS_REC)
        finally:
            os.close(sfd)
        if not ctx.cgroupns:
            _after_mount(rootfd, sub, bind_flags, Options())
        _link_comounted(rootfd, dest, h)


def _link_comounted(rootfd: int, dest: str, h: object) -> None:
    """cpu,cpuacct mounted together: also reachable as cpu/ and cpuacct/ (symlinks, like the host)."""
    name = h.name  # type: ignore[attr-defined]
    if "," not in name:
        return
    pfd = paths.open_in_root(rootfd, dest, os.O_PATH | os.O_DIRECTORY)
    try:
        for ctrl in name.split(","):
            try:
                os.symlink(name, ctrl, dir_fd=pfd)
            except FileExistsError:
                pass
    finally:
        os.close(pfd)


def pivot(rootfs: str) -> None:
    """Enter the rootfs; the old root is stacked under it by pivot_root(".", ".") and then detached."""
    os.chdir(rootfs)
    sc.pivot_root(".", ".")
    # Make the old root a slave first so its unmount does not propagate back to the host.
    sc.mount("", ".", None, sc.MS_SLAVE | sc.MS_REC)
    sc.umount(".", sc.MNT_DETACH)
    os.chdir("/")


def finalize(readonly_root: bool, dev_readonly: bool) -> None:
    if dev_readonly:
        _remount_bind("/dev", sc.MS_RDONLY | (_statvfs_flags("/dev") & _LOCKED))
    if readonly_root:
        _remount_bind("/", sc.MS_RDONLY | (_statvfs_flags("/") & _LOCKED))


def readonly_paths(items: list[str] | None) -> None:
    for p in items or ():
        try:
            sc.mount(p, p, "bind", sc.MS_BIND | sc.MS_REC)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue
            raise
        _remount_bind(p, sc.MS_RDONLY | sc.MS_REC | (_statvfs_flags(p) & _LOCKED))


def masked_paths(items: list[str] | None) -> None:
    """Hide files behind /dev/null and directories behind an empty read-only tmpfs."""
    for p in items or ():
        try:
            sc.mount("/dev/null", p, "bind", sc.MS_BIND)
        except OSError as e:
            if e.errno == errno.ENOENT:
                continue
            if e.errno != errno.ENOTDIR:
                raise
            sc.mount("tmpfs", p, "tmpfs", sc.MS_RDONLY)
