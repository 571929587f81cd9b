"""A container's /etc/hosts and /etc/resolv.conf, as Docker writes them at each start.

Both are files under <root>/containers/<id>/ that the runtime bind-mounts; they are rewritten in place
before the container starts (its address is known only then).
"""

from __future__ import annotations

import os

from dockyard.errors import InvalidArgument

HOSTS_HEADER = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def extra_host(entry: str, host_gateway: str | None) -> tuple[str, str]:
    """--add-host NAME:IP (or NAME=IP, or NAME:host-gateway) as (ip, name)."""
    sep = "=" if "=" in entry else ":"
    name, _, ip = entry.partition(sep)
    if not name or not ip:
        raise InvalidArgument(f"invalid argument {entry!r} for \"--add-host\" flag: bad format for add-host: "
                              f"{entry!r}")
    if ip == "host-gateway":
        if not host_gateway:
            raise InvalidArgument("unable to derive the IP value for host-gateway")
        ip = host_gateway
    return ip.strip("[]"), name


def hosts(hostname: str, domainname: str, address: str | None, extra: list[str],
          host_gateway: str | None) -> str:
    lines = [HOSTS_HEADER]
    for entry in extra:
        ip, name = extra_host(entry, host_gateway)
        lines.append(f"{ip}\t{name}\n")
    if address:
        names = f"{hostname}.{domainname} {hostname}" if domainname else hostname
        lines.append(f"{address}\t{names}\n")
    return "".join(lines)


def host_resolv_conf(keep_loopback: bool = False) -> list[str]:
    """The host's resolv.conf lines; without loopback name servers unless asked (unreachable from a
    container's own network namespace)."""
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    if keep_loopback:
        return lines
    return [line for line in lines
            if not (line.split()[:1] == ["nameserver"] and len(line.split()) > 1
                    and line.split()[1].startswith(("127.", "::1")))]


def host_nameservers() -> list[str]:
    """The host's IPv4 resolvers, loopback ones included (the DNS relay runs in the host's namespace)."""
    found = []
    for line in host_resolv_conf(keep_loopback=True):
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver" and ":" not in parts[1]:
            found.append(parts[1])
    return found


def resolv_conf(dns: list[str], search: list[str], options: list[str], embedded: bool,
                host_network: bool = False) -> str:
    """Docker's rules: the embedded server on user networks (--dns then only changes where it relays);
    otherwise the host's file with --dns/--dns-search/--dns-option replacing its lines."""
    base = host_resolv_conf(keep_loopback=host_network)
    host_search = [line for line in base if line.split()[:1] in (["search"], ["domain"])]
    host_options = [line for line in base if line.split()[:1] == ["options"]]
    others = [line for line in base if line.split()[:1] not in (["nameserver"], ["search"], ["domain"],
                                                                 ["options"])]
    lines = [line for line in others if line.strip() and not line.startswith("#")]
    if embedded:
        lines.append("nameserver 127.0.0.11")
    elif dns:
        lines += [f"nameserver {server}" for server in dns]
    else:
        lines += [line for line in base if line.split()[:1] == ["nameserver"]]
    lines += [f"search {' '.join(search)}"] if search else host_search
    if options:
        lines.append(f"options {' '.join(options)}")
    elif embedded:
        lines.append("options ndots:0")
    else:
        lines += host_options
    return "\n".join(lines) + "\n"


def write(path: str, content: str) -> None:
    """In place (the file may be bind-mounted into a running container), and without O_TRUNC: ext4 flushes
    a file truncated to zero when it is closed (auto_da_alloc), which costs 1.5 ms here; overwriting and then
    truncating to the new length costs 10 us."""
    data = content.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
    finally:
        os.close(fd)
