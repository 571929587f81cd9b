"""`docker run` / `docker create` flags, turned into the Engine API's create body, as the docker CLI does.

Every value is checked here, before anything is created: a bad size, port or mount is a usage error.
"""

from __future__ import annotations

import os

from dockyard.cli.flags import REMAINDER, ArgumentParser, Namespace
from dockyard.errors import InvalidArgument

UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_size(text: str, flag: str) -> int:
    """Docker's RAMInBytes: 512, 512k, 64m, 1.5g, 2GiB (binary units)."""
    value = text.strip().lower()
    for suffix in ("ib", "b"):
        if value.endswith(suffix) and len(value) > len(suffix):
            value = value[: -len(suffix)]
            break
    unit = value[-1:] if value[-1:] in UNITS else ""
    number = value[: len(value) - len(unit)].strip()
    if not number or not number.replace(".", "", 1).isdigit():
        raise InvalidArgument(f"invalid argument {text!r} for \"{flag}\" flag: invalid size: '{text}'")
    return int(float(number) * UNITS[unit])


def add_run_flags(p: ArgumentParser) -> None:
    a = p.add_argument
    a("-d", "--detach", action="store_true", help="Run container in background and print container ID")
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("--rm", action="store_true", help="Automatically remove the container when it exits")
    a("--name", help="Assign a name to the container")
    a("-e", "--env", action="append", default=[], help="Set environment variables")
    a("--env-file", action="append", default=[], help="Read in a file of environment variables")
    a("-w", "--workdir", help="Working directory inside the container")
    a("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("--entrypoint", help="Overwrite the default ENTRYPOINT of the image")
    a("-h", "--hostname", help="Container host name")
    a("--domainname", help="Container NIS domain name")
    a("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    a("--mount", action="append", default=[], help="Attach a filesystem mount to the container")
    a("--tmpfs", action="append", default=[], help="Mount a tmpfs directory")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("--init", action="store_true", help="Run an init inside the container that forwards signals and reaps "
                                          "processes")
    a("--restart", default="no", help="Restart policy to apply when a container exits")
    a("-l", "--label", action="append", default=[], help="Set meta data on a container")
    a("--label-file", action="append", default=[], help="Read in a line delimited file of labels")
    a("--stop-signal", help="Signal to stop the container")
    a("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container")
    a("-m", "--memory", help="Memory limit")
    a("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--memory-reservation", help="Memory soft limit")
    a("--cpus", help="Number of CPUs")
    a("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    a("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
    a("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
    a("--shm-size", help="Size of /dev/shm")
    a("--ulimit", action="append", default=[], help="Ulimit options")
    a("--cap-add", action="append", default=[], help="Add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("--security-opt", action="append", default=[], help="Security Options")
    a("--sysctl", action="append", default=[], help="Sysctl options")
    a("--group-add", action="append", default=[], help="Add additional groups to join")
    a("--oom-score-adj", type=int, help="Tune host's OOM preferences (-1000 to 1000)")
    a("--network", "--net", dest="network", default="default", help="Connect a container to a network")
    a("--network-alias", action="append", default=[], help="Add network-scoped alias for the container")
    a("--ip", help="IPv4 address (e.g., 172.30.100.104)")
    a("--dns", action="append", default=[], help="Set custom DNS servers")
    a("--dns-search", action="append", default=[], help="Set custom DNS search domains")
    a("--dns-option", "--dns-opt", dest="dns_option", action="append", default=[], help="Set DNS options")
    a("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping (host:ip)")
    a("-p", "--publish", action="append", default=[], help="Publish a container's port(s) to the host")
    a("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    a("--expose", action="append", default=[], help="Expose a port or a range of ports")
    a("--log-driver", default="json-file", help="Logging driver for the container")
    a("--log-opt", action="append", default=[], help="Log driver options")
    a("--runtime", help="Runtime to use for this container (dockyard, runc)")
    a("--platform", help="Set platform if server is multi-platform capable")
    a("--pull", default="missing", choices=["missing", "never", "always"], help="Pull image before running")
    a("-a", "--attach", action="append", default=[], help="Attach to STDIN, STDOUT or STDERR")
    a("--sig-proxy", default="true", help="Proxy received signals to the process (default true)")
    a("--detach-keys", help="Override the key sequence for detaching a container")
    a("--cidfile", help="Write the container ID to the file")
    a("-q", "--quiet", action="store_true", help="Suppress the pull output")
    a("image", metavar="IMAGE")
    a("command", nargs=REMAINDER, metavar="[COMMAND] [ARG...]")


def _env_file(path: str) -> list[str]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidArgument(f"open {path}: {e.strerror}") from None
    out = []
    for line in lines:
        line = line.lstrip()
        if not line or line.startswith("#"):
            continue
        out.extend(_env([line]))
    return out


def _env(values: list[str]) -> list[str]:
    out = []
    for value in values:
        key, eq, _ = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {value}")
        if eq:
            out.append(value)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return out


def _labels(values: list[str], files: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for path in files:
        with open(path) as f:
            values = [line.strip() for line in f if line.strip() and not line.startswith("#")] + values
    for value in values:
        key, _, val = value.partition("=")
        labels[key] = val
    return labels


def parse_ports(values: list[str]) -> tuple[dict, dict]:
    """-p flags: (ExposedPorts, PortBindings). Accepts [ip:][host:]container[/proto] and ranges."""
    exposed: dict[str, dict] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for value in values:
        proto = "tcp"
        spec = value
        if "/" in spec:
            spec, proto = spec.rsplit("/", 1)
            if proto not in ("tcp", "udp", "sctp"):
                raise InvalidArgument(f"invalid proto: {proto}")
        ip = ""
        if spec.startswith("["):
            close = spec.find("]")
            ip, spec = spec[1:close], spec[close + 2:]
        parts = spec.split(":")
        if len(parts) == 3:
            ip, host, container = parts
        elif len(parts) == 2:
            host, container = parts
        elif len(parts) == 1:
            host, container = "", parts[0]
        else:
            raise InvalidArgument(f"invalid port format: {value!r}")
        container_ports = _port_range(container, value)
        host_ports = _port_range(host, value) if host else [None] * len(container_ports)
        if host and len(host_ports) != len(container_ports):
            if len(host_ports) > 1 and len(container_ports) == 1:
                host_ports = [None]
                host_text = host
            else:
                raise InvalidArgument(f"invalid ranges specified for container and host ports: {value!r}")
        else:
            host_text = None
        if ip:
            import ipaddress

            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise InvalidArgument(f"invalid IP address: {ip}") from None
        for c, h in zip(container_ports, host_ports):
            key = f"{c}/{proto}"
            exposed[key] = {}
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": host_text or (str(h) if h else "")})
    return exposed, bindings


def _port_range(text: str, value: str) -> list[int]:
    start, dash, end = text.partition("-")
    try:
        first = int(start)
        last = int(end) if dash else first
    except ValueError:
        raise InvalidArgument(f"invalid port specification: {value!r}: {text!r} is not a port") from None
    if not (0 < first <= last <= 65535):
        raise InvalidArgument(f"invalid port specification: {value!r}: ports are 1 to 65535")
    return list(range(first, last + 1))


def _restart(value: str) -> dict:
    name, _, count = value.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise InvalidArgument(f"invalid restart policy '{value}'")
    if count and name != "on-failure":
        raise InvalidArgument(f"maximum retry count cannot be used with restart policy '{name}'")
    if count and not count.isdigit():
        raise InvalidArgument(f"invalid restart policy '{value}': maximum retry count must be an integer")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def _ulimits(values: list[str]) -> list[dict]:
    out = []
    for value in values:
        name, eq, limits = value.partition("=")
        soft, _, hard = limits.partition(":")
        try:
            soft_n = int(soft)
            hard_n = int(hard) if hard else soft_n
        except ValueError:
            raise InvalidArgument(f"invalid ulimit argument: {value}") from None
        if not eq or soft_n > hard_n:
            raise InvalidArgument(f"invalid ulimit argument: {value}")
        out.append({"Name": name, "Soft": soft_n, "Hard": hard_n})
    return out


def _mount_flag(value: str) -> dict:
    """--mount type=bind,source=/a,target=/b,readonly (CSV, as docker's)."""
    fields: dict[str, str] = {}
    import csv

    for item in next(csv.reader([value])):
        key, eq, val = item.partition("=")
        fields[key.strip().lower()] = val if eq else "true"
    mount: dict = {"Type": fields.get("type", "volume")}
    source = fields.get("source") or fields.get("src")
    if source:
        mount["Source"] = source
    target = fields.get("target") or fields.get("destination") or fields.get("dst")
    if not target:
        raise InvalidArgument(f"invalid argument {value!r} for \"--mount\" flag: target is required")
    mount["Target"] = target
    if fields.get("readonly", fields.get("ro", "false")) in ("true", "1"):
        mount["ReadOnly"] = True
    if "bind-propagation" in fields:
        mount["BindOptions"] = {"Propagation": fields["bind-propagation"]}
    tmpfs = {}
    if "tmpfs-size" in fields:
        tmpfs["SizeBytes"] = parse_size(fields["tmpfs-size"], "--mount")
    if "tmpfs-mode" in fields:
        tmpfs["Mode"] = int(fields["tmpfs-mode"], 8)
    if tmpfs:
        mount["TmpfsOptions"] = tmpfs
    if mount["Type"] == "bind" and source and not source.startswith("/"):
        mount["Source"] = os.path.abspath(source)
    return mount


def _volumes(values: list[str]) -> tuple[list[str], dict]:
    binds, anonymous = [], {}
    for value in values:
        parts = value.split(":")
        if len(parts) == 1:
            if not value.startswith("/"):
                raise InvalidArgument(f"invalid volume specification: '{value}': a container path must be absolute")
            anonymous[value] = {}
            continue
        source = parts[0]
        if source.startswith("."):
            absolute = os.path.abspath(source)
            if not os.path.exists(absolute):
                raise InvalidArgument(f"invalid volume specification: '{value}': bind source path does not "
                                      f"exist: {absolute}")
            parts[0] = absolute
        binds.append(":".join(parts))
    return binds, anonymous


def _security_opts(values: list[str]) -> list[str]:
    out = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep:
            key, sep, val = value.partition(":")
        if key == "seccomp" and val and val != "unconfined":
            import json

            try:
                with open(val) as f:
                    val = json.dumps(json.load(f))  # the docker CLI sends the profile itself
            except OSError as e:
                raise InvalidArgument(f"opening seccomp profile ({val}) failed: {e.strerror}") from None
            except ValueError as e:
                raise InvalidArgument(f"decoding seccomp profile failed: {e}") from None
            value = f"seccomp={val}"
        out.append(value)
    return out


def create_body(args: Namespace) -> dict:
    """The POST /containers/create body for these flags."""
    env = [e for path in args.env_file for e in _env_file(path)] + _env(args.env)
    binds, anonymous = _volumes(args.volume)
    exposed, bindings = parse_ports(args.publish)
    for port in args.expose:
        for p in _port_range(port.split("/")[0], port):
            exposed[f"{p}/{port.split('/')[1] if '/' in port else 'tcp'}"] = {}
    tmpfs = {}
    for value in args.tmpfs:
        path, _, options = value.partition(":")
        if not path.startswith("/"):
            raise InvalidArgument(f"invalid tmpfs path: {path}: must be absolute")
        tmpfs[path] = options
    cpus = None
    if args.cpus is not None:
        try:
            cpus = int(round(float(args.cpus) * 1e9))
        except ValueError:
            raise InvalidArgument(f"invalid argument {args.cpus!r} for \"--cpus\" flag: not a number") from None
    memory_swap = None
    if args.memory_swap is not None:
        memory_swap = -1 if args.memory_swap == "-1" else parse_size(args.memory_swap, "--memory-swap")
    log_config = {}
    for opt in args.log_opt:
        key, _, value = opt.partition("=")
        if key in ("max-size",):
            parse_size(value, "--log-opt")
        if key == "max-file" and not value.isdigit():
            raise InvalidArgument(f"invalid value for log opt max-file: {value}")
        log_config[key] = value
    if args.log_driver not in ("json-file", "none", "local"):
        raise InvalidArgument(f"logging driver {args.log_driver!r} is not supported (json-file only)")
    host = {
        "Binds": binds or None,
        "Mounts": [_mount_flag(m) for m in args.mount] or None,
        "Tmpfs": tmpfs or None,
        "ReadonlyRootfs": args.read_only,
        "Init": args.init or None,
        "RestartPolicy": _restart(args.restart),
        "AutoRemove": args.rm,
        "Memory": parse_size(args.memory, "--memory") if args.memory else 0,
        "MemorySwap": memory_swap or 0,
        "MemoryReservation": parse_size(args.memory_reservation, "--memory-reservation")
        if args.memory_reservation else 0,
        "NanoCpus": cpus or 0,
        "CpuShares": args.cpu_shares or 0,
        "CpuPeriod": args.cpu_period or 0,
        "CpuQuota": args.cpu_quota or 0,
        "CpusetCpus": args.cpuset_cpus or "",
        "CpusetMems": args.cpuset_mems or "",
        "PidsLimit": args.pids_limit,
        "ShmSize": parse_size(args.shm_size, "--shm-size") if args.shm_size else 0,
        "Ulimits": _ulimits(args.ulimit) or None,
        "CapAdd": args.cap_add or None,
        "CapDrop": args.cap_drop or None,
        "Privileged": args.privileged,
        "SecurityOpt": _security_opts(args.security_opt) or None,
        "Sysctls": dict(s.split("=", 1) for s in args.sysctl) or None,
        "GroupAdd": args.group_add or None,
        "OomScoreAdj": args.oom_score_adj or 0,
        "NetworkMode": args.network,
        "PortBindings": bindings,
        "PublishAllPorts": args.publish_all,
        "Dns": args.dns, "DnsSearch": args.dns_search, "DnsOptions": args.dns_option,
        "ExtraHosts": args.add_host or None,
        "LogConfig": {"Type": args.log_driver, "Config": log_config},
        "Runtime": args.runtime or "dockyard",
    }
    body = {
        "Hostname": args.hostname or "", "Domainname": args.domainname or "", "User": args.user or "",
        "AttachStdin": args.interactive, "AttachStdout": not args.detach, "AttachStderr": not args.detach,
        "Tty": args.tty, "OpenStdin": args.interactive, "StdinOnce": args.interactive and not args.detach,
        "Env": env, "Cmd": args.command or None, "Image": args.image,
        "Volumes": anonymous or None, "WorkingDir": args.workdir or "",
        "Labels": _labels(args.label, args.label_file),
        "ExposedPorts": exposed or None,
        "StopSignal": args.stop_signal, "StopTimeout": args.stop_timeout,
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": {args.network: {"Aliases": args.network_alias or None,
                                                                "IPAMConfig": {"IPv4Address": args.ip}
                                                                if args.ip else None}}},
    }
    if args.entrypoint is not None:
        # One word, not split: docker treats --entrypoint "sh -c" as a program named "sh -c".
        body["Entrypoint"] = [args.entrypoint] if args.entrypoint else []
    if args.stop_signal is None:
        del body["StopSignal"]
    if args.stop_timeout is None:
        del body["StopTimeout"]
    return body
