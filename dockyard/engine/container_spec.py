"""From a container's stored Config and HostConfig (Docker's API shapes) to the OCI spec our runtime runs.

Called by the monitor at every start, with the container's rootfs already mounted: users are looked up in
the image's own /etc/passwd, and the working directory is made inside the rootfs if it is missing, as
Docker does.
"""

from __future__ import annotations

import json
import os

from dockyard.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

INIT_BINARIES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/bin/tini")
INIT_PATH = "/sbin/docker-init"
ULIMIT_NAMES = {"core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA", "fsize": "RLIMIT_FSIZE",
                "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK", "msgqueue": "RLIMIT_MSGQUEUE",
                "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE", "nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS",
                "rtprio": "RLIMIT_RTPRIO", "rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING",
                "stack": "RLIMIT_STACK", "as": "RLIMIT_AS"}


def init_binary() -> str:
    for path in INIT_BINARIES:
        if os.path.exists(path):
            return path
    raise InvalidArgument("--init needs tini: apt-get install tini")


def seccomp_option(security_opts: list[str]) -> str | dict | None:
    """The seccomp setting from --security-opt: None (default profile), 'unconfined', or a profile."""
    for opt in security_opts:
        key, sep, value = opt.partition("=" if "=" in opt else ":")
        if key == "seccomp":
            if value == "unconfined":
                return "unconfined"
            try:
                return json.loads(value)  # the docker CLI sends the file's content, not its name
            except ValueError:
                with open(value) as f:
                    return json.load(f)
    return None


def process_args(config: dict[str, Any], init: bool) -> list[str]:
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not args:
        raise InvalidArgument("No command specified")
    return [INIT_PATH, "--", *args] if init else args


def oci_mounts(mounts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Docker's inspect Mounts (resolved at create time) as OCI mounts."""
    out = []
    for m in mounts:
        if m["Type"] in ("bind", "volume"):
            options = ["rbind", "ro" if not m.get("RW", True) else "rw"]
            propagation = m.get("Propagation") or "rprivate"
            out.append({"destination": m["Destination"], "type": "bind", "source": m["Source"],
                        "options": options + [propagation]})
        elif m["Type"] == "tmpfs":
            options = ["nosuid", "nodev", "noexec"] + [o for o in (m.get("Options") or "").split(",") if o]
            out.append({"destination": m["Destination"], "type": "tmpfs", "source": "tmpfs", "options": options})
    return out


def spec_for(data: dict[str, Any], rootfs: str, files: dict[str, str], netns: str | None) -> dict[str, Any]:
    """The OCI spec of a container. `files` maps /etc/hostname, /etc/hosts, /etc/resolv.conf to host files."""
    from dockyard.runtime import users
    from dockyard.runtime.spec import SpecOptions, generate_spec

    config, host = data["Config"], data["HostConfig"]
    user = users.resolve(rootfs, config.get("User") or None)
    extra_gids = [_group(rootfs, g) for g in host.get("GroupAdd") or []]
    env = list(config.get("Env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append(f"HOME={user.home or '/'}")
    cwd = config.get("WorkingDir") or "/"
    _make_workdir(rootfs, cwd, user.uid, user.gid)
    mounts = [{"destination": path, "type": "bind", "source": source, "options": ["rbind", "rprivate"]}
              for path, source in files.items()]
    mounts += oci_mounts(data.get("Mounts") or [])
    if host.get("Init"):
        mounts.append({"destination": INIT_PATH, "type": "bind", "source": init_binary(),
                       "options": ["rbind", "ro", "rprivate"]})
    network_mode = host.get("NetworkMode") or "default"
    namespaces: dict[str, str | None] = {}
    if network_mode == "host":
        namespaces["network"] = None
    elif netns:
        namespaces["network"] = netns
    memory_swap = host.get("MemorySwap")
    options = SpecOptions(
        args=process_args(config, bool(host.get("Init"))),
        env=env, cwd=cwd, uid=user.uid, gid=user.gid,
        additional_gids=sorted(set(user.additional_gids + extra_gids)),
        hostname=config.get("Hostname") or "", domainname=config.get("Domainname") or "",
        terminal=bool(config.get("Tty")), readonly_rootfs=bool(host.get("ReadonlyRootfs")),
        privileged=bool(host.get("Privileged")), cap_add=list(host.get("CapAdd") or []),
        cap_drop=list(host.get("CapDrop") or []),
        no_new_privileges=any(o.split("=")[0].split(":")[0] == "no-new-privileges" and not o.endswith("false")
                              for o in host.get("SecurityOpt") or []),
        seccomp=seccomp_option(host.get("SecurityOpt") or []),
        memory=host.get("Memory") or None, memory_swap=memory_swap if memory_swap else None,
        memory_reservation=host.get("MemoryReservation") or None,
        cpus=(host["NanoCpus"] / 1e9) if host.get("NanoCpus") else None,
        cpu_shares=host.get("CpuShares") or None, cpu_period=host.get("CpuPeriod") or None,
        cpu_quota=host.get("CpuQuota") or None, cpuset_cpus=host.get("CpusetCpus") or None,
        cpuset_mems=host.get("CpusetMems") or None,
        pids_limit=host.get("PidsLimit") if host.get("PidsLimit") and host["PidsLimit"] > 0 else None,
        shm_size=host.get("ShmSize") or None,
        mounts=mounts, tmpfs=dict(host.get("Tmpfs") or {}), sysctls=dict(host.get("Sysctls") or {}),
        ulimits=[{"type": ULIMIT_NAMES.get(u["Name"], "RLIMIT_" + u["Name"].upper()), "soft": u["Soft"],
                  "hard": u["Hard"]} for u in host.get("Ulimits") or []],
        oom_score_adj=host.get("OomScoreAdj") or None,
        namespaces=namespaces,
        cgroups_path=f"/dockyard/{data['Id']}",
    )
    return generate_spec(options)


def _group(rootfs: str, name: str) -> int:
    from dockyard.runtime import users

    if name.isdigit():
        return int(name)
    return users.resolve(rootfs, f"0:{name}").gid


def _make_workdir(rootfs: str, cwd: str, uid: int, gid: int) -> None:
    """Docker creates a missing working directory, owned by the container's user; never outside the rootfs."""
    from dockyard.runtime import paths

    root = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = paths.open_in_root(root, cwd, os.O_PATH | os.O_DIRECTORY)
        except FileNotFoundError:
            fd = paths.mkdir_all(root, cwd)
            os.chown(f"/proc/self/fd/{fd}", uid, gid)
        except NotADirectoryError:
            raise InvalidArgument(f"working directory {cwd} is not a directory in the container") from None
        os.close(fd)
    finally:
        os.close(root)
