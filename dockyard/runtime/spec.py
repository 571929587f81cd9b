"""OCI runtime spec generation with Docker's defaults, for the engine to call with `docker run`'s options.

`generate_spec(SpecOptions(...))` returns a config.json dict: Docker's 14 default capabilities, its masked
and read-only paths, its default mounts (/proc, /dev, /dev/pts, /dev/shm 64 MB, /dev/mqueue, /sys, cgroup),
its device cgroup rules, the default seccomp profile resolved for the capabilities, and the resource limits.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from dockyard.errors import InvalidArgument
from dockyard.runtime import capabilities

OCI_VERSION = "1.0.2"
DEFAULT_ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

DEFAULT_CAPS = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
    "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_SHM_SIZE = 64 * 1024 * 1024

# Docker's device cgroup: deny everything, then allow mknod of any node and use of the harmless ones.
DEFAULT_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},  # null
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},  # random
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},  # full
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},  # tty
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},  # zero
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},  # urandom
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},  # /dev/pts/*
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},  # ptmx
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},  # console
]


@dataclass
class SpecOptions:
    args: list[str]
    rootfs: str = "rootfs"
    env: list[str] = field(default_factory=list)
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    umask: int | None = None
    hostname: str = ""
    domainname: str = ""
    terminal: bool = False
    readonly_rootfs: bool = False
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    seccomp: str | dict[str, Any] | None = None  # None/"default", "unconfined", a file path, or a profile
    memory: int | None = None
    memory_swap: int | None = None  # total memory+swap as docker's --memory-swap; -1 unlimited
    memory_reservation: int | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    shm_size: int | None = None
    mounts: list[dict[str, Any]] = field(default_factory=list)  # extra OCI mounts (binds, volumes)
    tmpfs: dict[str, str] = field(default_factory=dict)  # path -> "size=64m,mode=1777" (docker --tmpfs)
    sysctls: dict[str, str] = field(default_factory=dict)
    ulimits: list[dict[str, Any]] = field(default_factory=list)  # [{"type": "RLIMIT_NOFILE", soft, hard}]
    oom_score_adj: int | None = None
    namespaces: dict[str, str | None] = field(default_factory=dict)  # type -> path, or None to drop it
    cgroups_path: str | None = None
    cgroupns: bool = False  # docker's default on cgroup v1 is the host's cgroup namespace
    annotations: dict[str, str] = field(default_factory=dict)


def generate_spec(o: SpecOptions) -> dict[str, Any]:
    caps = _capabilities(o)
    spec: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "process": _process(o, caps),
        "root": {"path": o.rootfs, "readonly": o.readonly_rootfs},
        "hostname": o.hostname,
        "mounts": _mounts(o),
        "linux": _linux(o, caps),
    }
    if o.domainname:
        spec["domainname"] = o.domainname
    if o.annotations:
        spec["annotations"] = dict(o.annotations)
    return spec


def _capabilities(o: SpecOptions) -> list[str]:
    if o.privileged:
        return list(capabilities.NAMES[: capabilities.last_cap() + 1])
    drop = {capabilities.normalize(c) for c in o.cap_drop}
    add = {capabilities.normalize(c) for c in o.cap_add}
    for name in add | drop:
        if name != "CAP_ALL" and name not in capabilities.NUMBERS:
            raise InvalidArgument(f"unknown capability: {name!r}")
    base = list(capabilities.NAMES) if "CAP_ALL" in add else list(DEFAULT_CAPS)
    if "CAP_ALL" in drop:
        base = []
    caps = [c for c in base if c not in drop]
    caps += sorted(c for c in add if c != "CAP_ALL" and c not in caps)
    return caps


def _process(o: SpecOptions, caps: list[str]) -> dict[str, Any]:
    env = list(o.env)
    if not any(e.startswith("PATH=") for e in env):
        env.insert(0, DEFAULT_ENV_PATH)
    user: dict[str, Any] = {"uid": o.uid, "gid": o.gid}
    if o.additional_gids:
        user["additionalGids"] = list(o.additional_gids)
    if o.umask is not None:
        user["umask"] = o.umask
    proc: dict[str, Any] = {
        "terminal": o.terminal, "user": user, "args": list(o.args), "env": env, "cwd": o.cwd or "/",
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": o.no_new_privileges,
    }
    if o.ulimits:
        proc["rlimits"] = [dict(u) for u in o.ulimits]
    if o.oom_score_adj is not None:
        proc["oomScoreAdj"] = o.oom_score_adj
    return proc


def _mounts(o: SpecOptions) -> list[dict[str, Any]]:
    shm = o.shm_size if o.shm_size is not None else DEFAULT_SHM_SIZE
    ro = [] if o.privileged else ["ro"]
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", *ro]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", *ro]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm}"]},
    ]
    for path, opts in o.tmpfs.items():
        options = ["nosuid", "nodev", "noexec"] + [x for x in opts.split(",") if x]
        mounts.append({"destination": path, "type": "tmpfs", "source": "tmpfs", "options": options})
    mounts.extend(dict(m) for m in o.mounts)
    # A user mount on a default destination replaces the default one, as in Docker.
    seen: dict[str, int] = {}
    for i, m in enumerate(mounts):
        seen[os.path.normpath(m["destination"])] = i
    return [m for i, m in enumerate(mounts) if seen[os.path.normpath(m["destination"])] == i]


def _linux(o: SpecOptions, caps: list[str]) -> dict[str, Any]:
    namespaces = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
    if o.cgroupns:
        namespaces.append({"type": "cgroup"})
    for kind, path in o.namespaces.items():
        namespaces = [n for n in namespaces if n["type"] != kind]
        if path is not None:
            namespaces.append({"type": kind, "path": path} if path else {"type": kind})
    linux: dict[str, Any] = {"namespaces": namespaces, "resources": _resources(o)}
    if o.cgroups_path:
        linux["cgroupsPath"] = o.cgroups_path
    if o.sysctls:
        linux["sysctl"] = dict(o.sysctls)
    if not o.privileged:
        linux["maskedPaths"] = list(MASKED_PATHS)
        linux["readonlyPaths"] = list(READONLY_PATHS)
    seccomp = _seccomp(o, caps)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return linux


def _resources(o: SpecOptions) -> dict[str, Any]:
    res: dict[str, Any] = {
        "devices": [{"allow": True, "access": "rwm"}] if o.privileged else [dict(r) for r in DEFAULT_DEVICE_RULES],
    }
    memory: dict[str, Any] = {}
    if o.memory:
        memory["limit"] = o.memory
        swap = o.memory_swap
        memory["swap"] = 2 * o.memory if swap is None else swap
        if swap not in (None, -1) and swap < o.memory:
            raise InvalidArgument("minimum memoryswap limit should be larger than memory limit")
    elif o.memory_swap:
        raise InvalidArgument("you should always set the memory limit when using memoryswap limit")
    if o.memory_reservation:
        memory["reservation"] = o.memory_reservation
    if memory:
        res["memory"] = memory
    cpu: dict[str, Any] = {}
    if o.cpus:
        if o.cpu_quota or o.cpu_period:
            raise InvalidArgument("conflicting options: cpus and cpu-quota/cpu-period")
        cpu["period"] = 100000
        cpu["quota"] = int(o.cpus * 100000)
    if o.cpu_period:
        cpu["period"] = o.cpu_period
    if o.cpu_quota:
        cpu["quota"] = o.cpu_quota
    if o.cpu_shares:
        cpu["shares"] = o.cpu_shares
    if o.cpuset_cpus:
        cpu["cpus"] = o.cpuset_cpus
    if o.cpuset_mems:
        cpu["mems"] = o.cpuset_mems
    if cpu:
        res["cpu"] = cpu
    if o.pids_limit is not None:
        res["pids"] = {"limit": o.pids_limit}
    return res


def _seccomp(o: SpecOptions, caps: list[str]) -> dict[str, Any] | None:
    if o.privileged or o.seccomp == "unconfined":
        return None
    if isinstance(o.seccomp, dict):
        return o.seccomp
    if o.seccomp in (None, "", "default"):
        from dockyard.runtime import seccomp_default

        return seccomp_default.profile(caps)
    try:
        with open(o.seccomp, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"opening seccomp profile ({o.seccomp}) failed: {e}") from None
    return _from_docker_profile(data, caps)


def _from_docker_profile(data: dict[str, Any], caps: list[str]) -> dict[str, Any]:
    """Accept a Docker-format profile (archMap, includes/excludes by caps and arches) or a plain OCI one."""
    machine = os.uname().machine
    arch = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}.get(machine, "")
    architectures = list(data.get("architectures") or [])
    for entry in data.get("archMap") or ():
        if entry.get("architecture") == arch:
            architectures = [arch, *entry.get("subArchitectures", [])]
    rules = []
    for rule in data.get("syscalls") or ():
        inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
        if inc.get("caps") and not set(inc["caps"]) <= set(caps):
            continue
        if inc.get("arches") and arch not in [_docker_arch(a) for a in inc["arches"]]:
            continue
        if exc.get("caps") and set(exc["caps"]) & set(caps):
            continue
        if exc.get("arches") and arch in [_docker_arch(a) for a in exc["arches"]]:
            continue
        rules.append({k: v for k, v in rule.items() if k in ("names", "name", "action", "args", "errnoRet")})
    out = {"defaultAction": data.get("defaultAction", "SCMP_ACT_ERRNO"), "architectures": architectures,
           "syscalls": rules}
    if data.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = data["defaultErrnoRet"]
    return out


def _docker_arch(name: str) -> str:
    return {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "x86_64": "SCMP_ARCH_X86_64"}.get(
        name, f"SCMP_ARCH_{name.upper()}")


def write_bundle(bundle: str, spec: dict[str, Any]) -> str:
    """Write config.json atomically into a bundle directory; returns its path."""
    os.makedirs(bundle, exist_ok=True)
    path = os.path.join(bundle, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        # json.dumps without indent: only then does json use its C encoder (0.04 ms for a container's spec;
        # json.dump or an indent take the pure-Python one, 0.25 ms on every container start).
        f.write(json.dumps(spec))
    os.rename(tmp, path)
    return path
