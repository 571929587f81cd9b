"""Resource usage of a container, read from its cgroups: Docker's stats document (GET .../stats).

The numbers come from the files runc's cgroup managers read, cgroup v1 first and v2 where v1 has nothing
(this host's hybrid layout has an empty v2 hierarchy beside the v1 controllers):

    cpu     cpuacct.usage, cpuacct.usage_percpu, cpuacct.stat, cpu.stat    (v2: cpu.stat usage_usec...)
    memory  memory.usage_in_bytes, memory.max_usage_in_bytes, memory.limit_in_bytes, memory.stat
                                                                           (v2: memory.current, memory.max)
    blkio   blkio.{,bfq.,throttle.}io_service_bytes_recursive               (v2: io.stat)
    pids    pids.current, pids.max
    network /proc/<init pid>/net/dev: the interfaces of the container's network namespace, loopback aside

CPU % needs two samples (Docker's daemon sends the previous one as precpu_stats); `sample` reads one, and
`document` pairs two into the shape the Docker API gives and the CLI computes from.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from dockyard.engine.container_store import ContainerRecord

NANOS = 10**9


@dataclass
class Sample:
    read: float = 0.0  # time.time() of the reading
    cpu: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    blkio: list[dict[str, Any]] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)
    networks: dict[str, dict[str, int]] = field(default_factory=dict)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    text = text.strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


class _Cgroups:
    """The container's cgroup directories (one per v1 hierarchy, plus the v2 one), searched by file name."""

    def __init__(self, dirs: list[str]) -> None:
        self.dirs = dirs

    def file(self, name: str) -> str | None:
        for directory in self.dirs:
            path = os.path.join(directory, name)
            if os.path.exists(path):
                return path
        return None

    def read(self, name: str) -> str | None:
        path = self.file(name)
        return _read(path) if path else None

    def pids(self) -> list[int]:
        """Every process in the container's cgroup and the cgroups below it."""
        found: set[int] = set()
        base = self.file("cgroup.procs")
        if base is None:
            return []
        for directory, _, _ in os.walk(os.path.dirname(base)):
            for line in (_read(os.path.join(directory, "cgroup.procs")) or "").split():
                if line.isdigit():
                    found.add(int(line))
        return sorted(found)


def cgroups_of(record: ContainerRecord) -> tuple[_Cgroups, int] | None:
    """(the cgroups of a running container's init, its pid), or None when it is not running."""
    from dockyard.engine.container_proc import cgroup_dirs, open_init

    proc = open_init(record)
    if proc is None:
        return None
    try:
        return _Cgroups(cgroup_dirs(proc)), int(record.state["Pid"])
    except (FileNotFoundError, ProcessLookupError):
        return None
    finally:
        os.close(proc)


def _kv(text: str | None) -> dict[str, int]:
    result: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            result[key] = int(value)
    return result


def _cpu(cg: _Cgroups) -> dict[str, Any]:
    ticks = os.sysconf("SC_CLK_TCK")
    usage = _int(cg.read("cpuacct.usage"))
    if usage is not None:
        percpu = [int(x) for x in (cg.read("cpuacct.usage_percpu") or "").split()]
        acct = _kv(cg.read("cpuacct.stat"))
        cpu_usage = {"total_usage": usage, "percpu_usage": percpu,
                     "usage_in_kernelmode": acct.get("system", 0) * NANOS // ticks,
                     "usage_in_usermode": acct.get("user", 0) * NANOS // ticks}
    else:
        stat = _kv(cg.read("cpu.stat"))
        cpu_usage = {"total_usage": stat.get("usage_usec", 0) * 1000,
                     "usage_in_kernelmode": stat.get("system_usec", 0) * 1000,
                     "usage_in_usermode": stat.get("user_usec", 0) * 1000}
    stat = _kv(cg.read("cpu.stat"))
    throttling = {"periods": stat.get("nr_periods", 0), "throttled_periods": stat.get("nr_throttled", 0),
                  "throttled_time": stat.get("throttled_time", stat.get("throttled_usec", 0) * 1000)}
    return {"cpu_usage": cpu_usage, "system_cpu_usage": system_cpu_usage(), "online_cpus": os.cpu_count() or 1,
            "throttling_data": throttling}


def system_cpu_usage() -> int:
    """The host's CPU time in nanoseconds, from /proc/stat's first line (what Docker's daemon reports)."""
    ticks = os.sysconf("SC_CLK_TCK")
    for line in (_read("/proc/stat") or "").splitlines():
        if line.startswith("cpu "):
            return sum(int(x) for x in line.split()[1:8]) * NANOS // ticks
    return 0


def host_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _memory(cg: _Cgroups) -> dict[str, Any]:
    usage = _int(cg.read("memory.usage_in_bytes"))
    if usage is not None:
        limit = _int(cg.read("memory.limit_in_bytes"))
        result = {"usage": usage, "max_usage": _int(cg.read("memory.max_usage_in_bytes")) or 0,
                  "failcnt": _int(cg.read("memory.failcnt")) or 0, "stats": _kv(cg.read("memory.stat"))}
    else:
        usage = _int(cg.read("memory.current"))
        if usage is None:
            return {}
        limit = _int(cg.read("memory.max"))
        result = {"usage": usage, "stats": _kv(cg.read("memory.stat"))}
    # No limit reads as a huge number (v1) or "max" (v2): Docker shows the host's memory instead.
    host = host_memory()
    result["limit"] = host if limit is None or limit > host else limit
    return result


def _blkio(cg: _Cgroups) -> list[dict[str, Any]]:
    for name in ("blkio.io_service_bytes_recursive", "blkio.bfq.io_service_bytes_recursive",
                 "blkio.throttle.io_service_bytes_recursive"):
        text = cg.read(name)
        entries = []
        for line in (text or "").splitlines():
            fields = line.split()
            if len(fields) == 3 and ":" in fields[0]:
                major, minor = fields[0].split(":")
                entries.append({"major": int(major), "minor": int(minor), "op": fields[1], "value": int(fields[2])})
        if entries:
            return entries
    entries = []
    for line in (cg.read("io.stat") or "").splitlines():  # v2: "8:0 rbytes=1 wbytes=2 ..."
        device, *pairs = line.split()
        major, _, minor = device.partition(":")
        values = dict(p.split("=", 1) for p in pairs if "=" in p)
        for key, op in (("rbytes", "read"), ("wbytes", "write")):
            if key in values:
                entries.append({"major": int(major), "minor": int(minor), "op": op, "value": int(values[key])})
    return entries


def _pids(cg: _Cgroups) -> dict[str, int]:
    current = _int(cg.read("pids.current"))
    if current is None:
        current = len(cg.pids())
    result = {"current": current}
    limit = _int(cg.read("pids.max"))
    if limit is not None:
        result["limit"] = limit
    return result


def _networks(pid: int) -> dict[str, dict[str, int]]:
    """Counters of the container's interfaces, read from its network namespace through its init's /proc."""
    text = _read(f"/proc/{pid}/net/dev") if pid > 0 else None
    result = {}
    for line in (text or "").splitlines()[2:]:
        name, _, counters = line.partition(":")
        name = name.strip()
        values = counters.split()
        if name == "lo" or len(values) < 16:
            continue
        v = [int(x) for x in values]
        result[name] = {"rx_bytes": v[0], "rx_packets": v[1], "rx_errors": v[2], "rx_dropped": v[3],
                        "tx_bytes": v[8], "tx_packets": v[9], "tx_errors": v[10], "tx_dropped": v[11]}
    return result


def sample(engine, record: ContainerRecord) -> Sample | None:
    """One reading of a running container's counters; None when it is not running."""
    found = cgroups_of(record)
    if found is None:
        return None
    cg, pid = found
    return Sample(time.time(), _cpu(cg), _memory(cg), _blkio(cg), _pids(cg), _networks(pid))


def document(record: ContainerRecord, current: Sample | None, previous: Sample | None) -> dict[str, Any]:
    """Docker's stats JSON (API 1.41) from two samples; zeros for a container that is not running."""
    from dockyard.timeutil import rfc3339

    zero_time = "0001-01-01T00:00:00Z"
    empty_cpu = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
                 "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}
    cur = current or Sample()
    pre = previous or Sample()
    return {
        "read": rfc3339(cur.read) if current else zero_time,
        "preread": rfc3339(pre.read) if previous else zero_time,
        "pids_stats": cur.pids,
        "blkio_stats": {"io_service_bytes_recursive": cur.blkio or None, "io_serviced_recursive": None,
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None, "io_time_recursive": None,
                        "sectors_recursive": None},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cur.cpu or empty_cpu,
        "precpu_stats": pre.cpu or empty_cpu,
        "memory_stats": cur.memory,
        "name": "/" + record.name,
        "id": record.id,
        **({"networks": cur.networks} if current else {}),
    }
