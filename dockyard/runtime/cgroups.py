"""cgroups for containers on v1, v2 (unified) and hybrid hosts (v1 controllers + an empty v2 tree).

The runtime (the parent, before forking the init) calls `prepare`: it finds the mounted hierarchies, makes the
container's directory in each, and writes the spec's `linux.resources`. The init then joins them itself with
`join` (writing 0 to cgroup.procs means "me"), before unsharing its cgroup namespace so that namespace is rooted
at the container's cgroup. `remove` deletes the directories on delete.

Paths follow runc: an absolute cgroupsPath is taken from each hierarchy's root; a relative one (or none, which
means the container id) from the runtime's own cgroup in that hierarchy.
"""

from __future__ import annotations

import errno
import os
import time
from functools import lru_cache
from typing import Any

from dockyard.errors import HostError, InvalidArgument

V1_CONTROLLERS = {
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "net_cls", "net_prio",
    "perf_event", "hugetlb", "rdma", "misc",
}


class Hierarchy:
    """One mounted cgroup hierarchy. (Plain classes in the runtime: `dataclasses` costs the CLI ~5 ms to import.)"""

    __slots__ = ("controllers", "mount_root", "mountpoint", "version")

    def __init__(self, mountpoint: str, version: int, controllers: frozenset[str], mount_root: str) -> None:
        self.mountpoint = mountpoint
        self.version = version  # 1 or 2
        self.controllers = controllers  # v1: "memory", "name=systemd"...; v2: empty
        self.mount_root = mount_root  # the cgroup shown at the mount point (not "/" in a cgroup namespace)

    @property
    def name(self) -> str:
        return os.path.basename(self.mountpoint)


@lru_cache(maxsize=1)
def hierarchies() -> tuple[Hierarchy, ...]:
    """The host's cgroup mounts. Cached for the life of the process: reading mountinfo costs the kernel ~1 ms
    on a busy host, and cgroup hierarchies are not remounted under a running engine."""
    return tuple(_read_hierarchies())


def _read_hierarchies() -> list[Hierarchy]:
    result = []
    with open("/proc/self/mountinfo", "rb") as f:
        for raw in f:
            line = raw.decode(errors="replace")
            pre, _, post = line.partition(" - ")
            fstype, _source, super_opts = (post.split() + ["", ""])[:3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            fields = pre.split()
            root, mountpoint = _unescape(fields[3]), _unescape(fields[4])
            if fstype == "cgroup2":
                result.append(Hierarchy(mountpoint, 2, frozenset(), root))
                continue
            ctrls = frozenset(o for o in super_opts.split(",") if o in V1_CONTROLLERS or o.startswith("name="))
            result.append(Hierarchy(mountpoint, 1, ctrls, root))
    return _dedupe(result)


def _unescape(path: str) -> str:
    return path.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def _dedupe(items: list[Hierarchy]) -> list[Hierarchy]:
    """One mount per hierarchy (bind mounts of the same tree would make us write twice)."""
    seen: set[tuple[int, frozenset[str]]] = set()
    out = []
    for h in items:
        key = (h.version, h.controllers)
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


def is_unified(items: tuple[Hierarchy, ...] | list[Hierarchy]) -> bool:
    return not any(h.version == 1 for h in items)


def own_cgroups() -> dict[tuple[int, frozenset[str]], str]:
    """The runtime's own cgroup in each hierarchy, from /proc/self/cgroup."""
    mine = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _num, ctrls, path = line.rstrip("\n").split(":", 2)
            if ctrls == "":
                mine[(2, frozenset())] = path
            else:
                mine[(1, frozenset(ctrls.split(",")))] = path
    return mine


def resolve_paths(cgroups_path: str | None, container_id: str,
                  items: tuple[Hierarchy, ...] | list[Hierarchy]) -> dict[str, str]:
    """Mount point -> the container's cgroup directory, for every usable hierarchy."""
    path = _systemd_style(cgroups_path) if cgroups_path else container_id
    if ".." in path.split("/"):
        raise InvalidArgument(f"invalid cgroupsPath {cgroups_path!r}")
    mine = own_cgroups()
    dirs = {}
    for h in items:
        if path.startswith("/"):
            rel = path
        else:
            base = mine.get((h.version, h.controllers), "/")
            rel = os.path.join(base, path)
        # Strip the part of the path above the mount's root (nested in a cgroup namespace or a bind mount).
        if h.mount_root != "/" and (rel == h.mount_root or rel.startswith(h.mount_root + "/")):
            rel = rel[len(h.mount_root):] or "/"
        dirs[h.mountpoint] = os.path.normpath(h.mountpoint + "/" + rel.lstrip("/"))
    return dirs


def _systemd_style(path: str) -> str:
    """'slice:prefix:name' (what podman passes with the systemd manager) -> '/slice/prefix-name.scope'."""
    parts = path.split(":")
    if len(parts) == 3 and not path.startswith("/"):
        slice_, prefix, name = parts
        return f"/{slice_ or 'system.slice'}/{prefix}-{name}.scope"
    return path


def prepare(container_id: str, cgroups_path: str | None, resources: dict[str, Any] | None) -> tuple[dict[str, str], list[str]]:
    """Create the container's cgroups and apply limits. Returns (mountpoint -> dir, dirs we created)."""
    items = hierarchies()
    dirs = resolve_paths(cgroups_path, container_id, items)
    created: list[str] = []
    try:
        for h in items:
            d = dirs[h.mountpoint]
            if _makedirs(h, d):
                created.append(d)
        _apply(items, dirs, resources or {})
    except BaseException:
        remove(created)
        raise
    return dirs, created


def _makedirs(h: Hierarchy, d: str) -> bool:
    """mkdir -p, seeding cpuset.cpus/mems at each new level on v1 (an empty cpuset refuses tasks)."""
    missing = []
    p = d
    while not os.path.isdir(p):
        missing.append(p)
        p = os.path.dirname(p)
    for p in reversed(missing):
        try:
            os.mkdir(p, 0o755)
        except FileExistsError:
            continue
        if h.version == 1 and "cpuset" in h.controllers:
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not _read(os.path.join(p, name)).strip():
                    _write(os.path.join(p, name), _read(os.path.join(os.path.dirname(p), name)).strip())
    return bool(missing) and missing[0] == d


def _apply(items: tuple[Hierarchy, ...], dirs: dict[str, str], res: dict[str, Any]) -> None:
    if is_unified(items):
        _apply_v2(dirs[items[0].mountpoint], items[0], res)
        return
    by_ctrl = {c: dirs[h.mountpoint] for h in items if h.version == 1 for c in h.controllers}
    if res.get("unified"):
        raise InvalidArgument("linux.resources.unified needs a cgroup v2 host")
    _apply_v1(by_ctrl, res)


def _apply_v1(d: dict[str, str], res: dict[str, Any]) -> None:
    mem = res.get("memory") or {}
    if mem:
        m = _need(d, "memory")
        _set_opt(m, "memory.limit_in_bytes", mem.get("limit"))
        if mem.get("swap") not in (None, 0):
            if not os.path.exists(os.path.join(m, "memory.memsw.limit_in_bytes")):
                raise HostError("memory swap limit given but swap accounting is off on this host")
            _set_opt(m, "memory.memsw.limit_in_bytes", mem.get("swap"))
        _set_opt(m, "memory.soft_limit_in_bytes", mem.get("reservation"))
        _set_opt(m, "memory.swappiness", mem.get("swappiness"))
        if mem.get("disableOOMKiller"):
            _write(os.path.join(m, "memory.oom_control"), "1")
    cpu = res.get("cpu") or {}
    if cpu.get("shares") or cpu.get("quota") or cpu.get("period"):
        c = _need(d, "cpu")
        _set_opt(c, "cpu.shares", cpu.get("shares") or None)
        _set_opt(c, "cpu.cfs_period_us", cpu.get("period") or None)
        _set_opt(c, "cpu.cfs_quota_us", cpu.get("quota") or None)
    if cpu.get("cpus") or cpu.get("mems"):
        s = _need(d, "cpuset")
        _set_opt(s, "cpuset.cpus", cpu.get("cpus") or None)
        _set_opt(s, "cpuset.mems", cpu.get("mems") or None)
    pids = res.get("pids") or {}
    if "limit" in pids:
        limit = pids["limit"]
        _write(os.path.join(_need(d, "pids"), "pids.max"), "max" if limit is None or limit <= 0 else str(limit))
    blkio = res.get("blockIO") or {}
    if blkio.get("weight"):
        _set_opt(_need(d, "blkio"), "blkio.weight", blkio["weight"])


def apply_devices(dirs: dict[str, str], resources: dict[str, Any] | None) -> None:
    """Device rules go on last, once the init has made its /dev nodes (a deny-all would refuse mknod).

    Only the v1 devices controller is handled; on v2 the rules need an eBPF program (not done yet).
    """
    rules = (resources or {}).get("devices")
    if not rules:
        return
    for h in hierarchies():
        if h.version == 1 and "devices" in h.controllers and h.mountpoint in dirs:
            _apply_devices_v1(dirs[h.mountpoint], rules)


def _apply_devices_v1(d: str, rules: list[dict[str, Any]]) -> None:
    for rule in rules:
        kind = rule.get("type") or "a"
        major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
        minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
        access = rule.get("access") or "rwm"
        entry = "a" if kind == "a" else f"{kind} {major}:{minor} {access}"
        _write(os.path.join(d, "devices.allow" if rule.get("allow") else "devices.deny"), entry)


def _apply_v2(d: str, h: Hierarchy, res: dict[str, Any]) -> None:
    _enable_controllers(h, d)
    mem = res.get("memory") or {}
    _set_opt(d, "memory.max", _v2_max(mem.get("limit")))
    if mem.get("swap") not in (None, 0):
        swap = mem["swap"]
        _set_opt(d, "memory.swap.max", "max" if swap == -1 else max(swap - (mem.get("limit") or 0), 0))
    _set_opt(d, "memory.low", mem.get("reservation"))
    cpu = res.get("cpu") or {}
    if cpu.get("shares"):
        _write(os.path.join(d, "cpu.weight"), str(1 + ((cpu["shares"] - 2) * 9999) // 262142))
    if cpu.get("quota") or cpu.get("period"):
        quota = cpu.get("quota")
        _write(os.path.join(d, "cpu.max"), f"{'max' if not quota or quota < 0 else quota} {cpu.get('period') or 100000}")
    _set_opt(d, "cpuset.cpus", cpu.get("cpus") or None)
    _set_opt(d, "cpuset.mems", cpu.get("mems") or None)
    pids = res.get("pids") or {}
    if "limit" in pids:
        limit = pids["limit"]
        _write(os.path.join(d, "pids.max"), "max" if limit is None or limit <= 0 else str(limit))
    for key, value in (res.get("unified") or {}).items():
        if "/" in key or key.startswith("."):
            raise InvalidArgument(f"invalid unified cgroup key {key!r}")
        _write(os.path.join(d, key), str(value))


def _v2_max(value: int | None) -> str | None:
    if value is None:
        return None
    return "max" if value < 0 else str(value)


def _enable_controllers(h: Hierarchy, d: str) -> None:
    """Turn on every available controller on the path from the hierarchy root down to the container's parent."""
    available = _read(os.path.join(h.mountpoint, "cgroup.controllers")).split()
    if not available:
        return
    rel = os.path.relpath(os.path.dirname(d), h.mountpoint)
    p = h.mountpoint
    for part in [] if rel == "." else rel.split("/"):
        _try_enable(p, available)
        p = os.path.join(p, part)
    _try_enable(p, available)


def _try_enable(p: str, controllers: list[str]) -> None:
    for c in controllers:
        try:
            _write(os.path.join(p, "cgroup.subtree_control"), f"+{c}")
        except OSError:
            pass  # not enableable here (e.g. the no-internal-process rule): limits on it will fail loudly


def _need(d: dict[str, str], controller: str) -> str:
    try:
        return d[controller]
    except KeyError:
        raise HostError(f"cgroup controller {controller!r} is not mounted on this host") from None


def _set_opt(d: str, name: str, value: object) -> None:
    if value is not None:
        _write(os.path.join(d, name), str(value))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise HostError(f"cgroup file {path} does not exist (controller missing?)") from None
    try:
        os.write(fd, value.encode())
    except OSError as e:
        raise HostError(f"cannot write {value!r} to {path}: {e.strerror}") from None
    finally:
        os.close(fd)


def join(dirs: dict[str, str]) -> None:
    """Move the calling (single-threaded) process into every cgroup (v1 hierarchies and the v2 tree alike).

    On v1 we write "0" to `tasks`: moving just the current thread skips the global threadgroup rwsem, whose
    write side waits for an RCU grace period (~10 ms) when taken through cgroup.procs.
    """
    for d in dirs.values():
        tasks = os.path.join(d, "tasks")
        _write(tasks if os.path.exists(tasks) else os.path.join(d, "cgroup.procs"), "0")


def v2_dir(dirs: dict[str, str]) -> str | None:
    """The container's directory in the cgroup v2 tree (unified or hybrid), if there is one."""
    for mountpoint, d in dirs.items():
        if _is_cgroup2(mountpoint):
            return d
    return None


def _is_cgroup2(mountpoint: str) -> bool:
    return os.path.exists(os.path.join(mountpoint, "cgroup.controllers"))  # only v2 roots have it


def join_pid(dirs: dict[str, str], pid: int) -> None:
    for d in dirs.values():
        _write(os.path.join(d, "cgroup.procs"), str(pid))


def pids(dirs: dict[str, str]) -> list[int]:
    """Processes in the container's cgroup (v2 tree when there is one, else any v1 hierarchy)."""
    for d in sorted(dirs.values(), key=lambda p: ("pids" not in p, p)):
        try:
            return [int(x) for x in _read(os.path.join(d, "cgroup.procs")).split()]
        except OSError:
            continue
    return []


def remove(created: list[str], timeout: float = 2.0) -> None:
    """rmdir each directory we made; retry while the last tasks drain out (EBUSY right after a kill)."""
    deadline = time.monotonic() + timeout
    for d in created:
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY) or time.monotonic() > deadline:
                    raise HostError(f"cannot remove cgroup {d}: {e.strerror}") from None
                time.sleep(0.005)


def freeze(dirs: dict[str, str], frozen: bool, timeout: float = 5.0) -> None:
    """Pause or resume every process of the container: v1 freezer.state, else v2 cgroup.freeze."""
    for d in dirs.values():
        state_file = os.path.join(d, "freezer.state")
        if os.path.exists(state_file):
            want = "FROZEN" if frozen else "THAWED"
            _write(state_file, want)
            _wait_for(lambda: _read(state_file).strip() == want, timeout)  # noqa: B023 - called right here
            return
    v2 = v2_dir(dirs)
    if v2 and os.path.exists(os.path.join(v2, "cgroup.freeze")):
        _write(os.path.join(v2, "cgroup.freeze"), "1" if frozen else "0")
        want = "frozen 1" if frozen else "frozen 0"
        _wait_for(lambda: want in _read(os.path.join(v2, "cgroup.events")), timeout)
        return
    raise HostError("no freezer: neither the v1 freezer controller nor cgroup v2 is available")


def is_frozen(dirs: dict[str, str]) -> bool:
    for d in dirs.values():
        try:
            return _read(os.path.join(d, "freezer.state")).strip() == "FROZEN"
        except OSError:
            continue
    v2 = v2_dir(dirs)
    if v2:
        try:
            return "frozen 1" in _read(os.path.join(v2, "cgroup.events"))
        except OSError:
            return False
    return False


def _wait_for(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise HostError("the cgroup freezer did not settle in time")
        time.sleep(0.001)
