"""IP address management: choosing a network's subnet, and handing out its addresses to endpoints.

Subnets chosen automatically are /24s from AUTO_POOL that neither overlap another network of this root nor
any route of the host (the machine may run Docker on 172.17.0.0/16, podman on 10.88.0.0/16, other dockyard
roots...). Addresses are handed out round-robin rather than lowest-free, as Docker does, so an address just
released (whose old neighbour entries and conntrack state may linger) is not reused at once.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from ipaddress import IPv4Address, IPv4Network

from dockyard.errors import Conflict, InvalidArgument

AUTO_POOL = IPv4Network("10.213.0.0/16")
AUTO_PREFIX = 24


def parse_subnet(text: str) -> IPv4Network:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text}: invalid CIDR address: {text}") from None
    if not isinstance(network, IPv4Network):
        raise InvalidArgument(f"invalid subnet {text}: only IPv4 subnets are supported")
    if network.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {text}: too small for a network (at most /30)")
    return network


def parse_address(text: str, what: str = "IP address") -> IPv4Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text}") from None
    if not isinstance(address, IPv4Address):
        raise InvalidArgument(f"invalid {what}: {text}: only IPv4 is supported")
    return address


def host_routes() -> list[tuple[IPv4Network, str]]:
    """The host's IPv4 routes but default ones, with their interface (from /proc/net/route: no `ip`)."""
    routes = []
    with open("/proc/net/route") as f:
        next(f)
        for line in f:
            fields = line.split()
            destination, mask = (struct.pack("<I", int(fields[i], 16)) for i in (1, 7))
            network = IPv4Network(f"{socket.inet_ntoa(destination)}/{socket.inet_ntoa(mask)}", strict=False)
            if network.prefixlen:
                routes.append((network, fields[0]))
    return routes


def nameservers() -> list[IPv4Network]:
    """The host's resolvers as /32s: a subnet holding one would cut the containers' DNS off."""
    found = []
    try:
        with open("/etc/resolv.conf") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2 and parts[0] == "nameserver":
                    try:
                        found.append(IPv4Network(parts[1]))
                    except ValueError:
                        pass
    except OSError:
        pass
    return found


def pick_subnet(taken: list[IPv4Network]) -> IPv4Network:
    """The first /24 of the pool overlapping nothing taken."""
    for candidate in AUTO_POOL.subnets(new_prefix=AUTO_PREFIX):
        if not any(candidate.overlaps(other) for other in taken):
            return candidate
    raise Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults to "
                   "assign to the network")


def default_gateway(subnet: IPv4Network) -> IPv4Address:
    return subnet.network_address + 1


class Allocator:
    """The addresses of one network in use by endpoints (kept by the monitor, in memory)."""

    def __init__(self, subnet: IPv4Network, gateway: IPv4Address,
                 ip_range: IPv4Network | None = None) -> None:
        self.subnet, self.gateway = subnet, gateway
        self.range = ip_range or subnet
        self.used: set[IPv4Address] = set()
        self.last = int(self.range.network_address)

    def _usable(self, address: IPv4Address) -> bool:
        return (address in self.subnet and address != self.gateway and address != self.subnet.network_address
                and address != self.subnet.broadcast_address)

    def allocate(self, requested: IPv4Address | None = None) -> IPv4Address:
        if requested is not None:
            if requested not in self.subnet:
                raise InvalidArgument(f"Invalid address {requested}: It does not belong to any of this "
                                      f"network's subnets")
            if requested in self.used or not self._usable(requested):
                raise Conflict(f"Address already in use: {requested}")
            self.used.add(requested)
            return requested
        first, last = int(self.range.network_address), int(self.range.broadcast_address)
        size = last - first + 1
        for step in range(1, size + 1):
            address = IPv4Address(first + (self.last - first + step) % size)
            if address not in self.used and self._usable(address):
                self.used.add(address)
                self.last = int(address)
                return address
        raise Conflict(f"no available IPv4 addresses on this network's address pools: {self.subnet}")

    def release(self, address: IPv4Address) -> None:
        self.used.discard(address)

    def hold(self, address: IPv4Address) -> None:
        """Mark an address already used (an endpoint found running when the monitor started)."""
        self.used.add(address)
