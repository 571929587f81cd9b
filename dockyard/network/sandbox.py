"""A container's network namespace (its sandbox, in Docker's words) and its endpoints on bridge networks.

An endpoint is a veth pair: the host end (vdy<id6><n><rand5>) is a port of the network's bridge, the other
end is eth<n> in the container's namespace with the endpoint's address (and, on the first network with a
gateway, the default route). Both ends are made by one netlink request (see netlink.add_veth).
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from dockyard.network.bridge import LiveNetwork, mac_for
from dockyard.network.dns import Listening
from dockyard.network.netlink import Netlink, NetlinkError
from dockyard.network.ports import Binding


@dataclass
class Endpoint:
    network: LiveNetwork
    interface: str
    host_veth: str
    address: IPv4Address
    mac: str
    endpoint_id: str
    aliases: list[str]
    static: bool = False  # --ip: kept in IPAMConfig


@dataclass
class Sandbox:
    container_id: str
    name: str
    path: str
    endpoints: dict[str, Endpoint] = field(default_factory=dict)  # by network id, in attach order
    bindings: list[Binding] = field(default_factory=list)
    dns: Listening | None = None                   # its embedded DNS server's sockets
    dns_servers: list[str] = field(default_factory=list)  # --dns: where that server relays (else the host's)

    @property
    def primary(self) -> Endpoint | None:
        return next(iter(self.endpoints.values()), None)

    def next_interface(self) -> int:
        used = {int(e.interface[3:]) for e in self.endpoints.values()}
        return next(i for i in range(len(used) + 1) if i not in used)

    def names(self) -> set[str]:
        """What DNS answers for this container: its name and short id (aliases are per network)."""
        return {self.name.lower(), self.container_id[:12]}


def host_veth_name(container_id: str, index: int) -> str:
    # 15 bytes at most. The random tail keeps a restart from meeting the old pair, which the kernel destroys
    # asynchronously once the old namespace is gone (so detach need not wait for it).
    return f"vdy{container_id[:6]}{index:x}{os.urandom(3).hex()[:5]}"


def add_endpoint(nl: Netlink, inner: Netlink, netns_fd: int, sandbox: Sandbox, live: LiveNetwork,
                 address: IPv4Address, aliases: list[str], default_route: bool, static: bool) -> Endpoint:
    number = sandbox.next_interface()
    endpoint = Endpoint(live, f"eth{number}", "", address, mac_for(address), os.urandom(32).hex(), aliases,
                        static)
    for attempt in range(4):
        endpoint.host_veth = host_veth_name(sandbox.container_id, number)
        try:
            nl.add_veth(endpoint.host_veth, live.index, endpoint.interface, netns_fd, endpoint.mac)
            break
        except NetlinkError as e:
            if e.errno != errno.EEXIST or attempt == 3:
                raise
    try:
        nl.up_without_ipv6(endpoint.host_veth)
        index = inner.link_index(endpoint.interface)
        assert index is not None
        inner.set_up(index)
        inner.add_address(index, str(address), live.subnet.prefixlen, str(live.subnet.broadcast_address))
        if default_route:
            inner.add_default_route(str(live.gateway), index)
    except BaseException:
        nl.delete_link(endpoint.host_veth)
        raise
    sandbox.endpoints[live.record.id] = endpoint
    return endpoint


def wait_carrier(endpoint: Endpoint, timeout: float = 0.5) -> None:
    """Wait until the kernel has taken in the host end's carrier (its operstate is "up").

    The host end is brought up before its peer, so it opens without carrier and the kernel defers starting
    its transmit queue until its link watcher sees the carrier come on, asynchronously. Meanwhile the bridge
    may already forward to the port (it takes the fresh link's "unknown" state for up) and every frame sent
    to the container is dropped: if that was the ARP request of the container's first connection, ARP and
    TCP retry only after a second (seen on a busy machine, one start in twenty). Usually no wait at all.
    """
    import time

    path = f"/sys/class/net/{endpoint.host_veth}/operstate"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                if f.read().strip() == "up":
                    return
        except FileNotFoundError:
            return
        if time.monotonic() > deadline:
            return  # let the container start; the kernel will catch up
        time.sleep(0.0002)
