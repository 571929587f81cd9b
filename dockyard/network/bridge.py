"""Bringing a bridge network up (link, gateway address, sysctls, packet filter) and down again.

A network is up while the monitor that brought it up runs and the network exists: the monitor takes every
network it brought up down when it exits, and the next monitor takes down whatever a dead one left (see
NetworkRuntime.sweep), so a bridge never outlives the engine's interest in it.

Subnets: another dockyard root, Docker, podman or a VPN may have taken an automatically chosen subnet since
it was chosen (it is only routed while its bridge is up). Bringing up holds a machine-wide lock from the
route check until our own route exists, and moves an automatically chosen subnet that is now taken.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network

from dockyard.network import firewall, ipam
from dockyard.network.ipam import Allocator
from dockyard.network.netlink import Netlink, NetlinkError
from dockyard.network.nft import Nft
from dockyard.network.store import NetworkRecord, NetworkStore

LOCK_PATH = "/run/lock/dockyard-network.lock"
MTU = 1500


def mac_for(address: IPv4Address) -> str:
    """Docker's classic MAC for an address: 02:42 and the address's four bytes (stable across restarts)."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)


@contextmanager
def machine_lock() -> Iterator[None]:
    """Serialises subnet choices across every dockyard root on this machine."""
    os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
    fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class LiveNetwork:
    """A bridge network that is up: its bridge's index and the addresses its endpoints hold."""

    def __init__(self, record: NetworkRecord, index: int) -> None:
        self.record = record
        self.index = index
        self.subnet = IPv4Network(record.subnet)
        self.gateway = IPv4Address(record.gateway)
        ip_range = IPv4Network(record.ip_range) if record.ip_range else None
        self.allocator = Allocator(self.subnet, self.gateway, ip_range)

    @property
    def bridge(self) -> str:
        return self.record.interface


def _taken_by_others(bridge: str, store: NetworkStore, record: NetworkRecord) -> list[IPv4Network]:
    taken = [net for net, dev in ipam.host_routes() if dev != bridge]
    taken += ipam.nameservers()
    taken += [IPv4Network(r.subnet) for r in store.all() if r.subnet and r.id != record.id]
    return taken


def _settle_subnet(store: NetworkStore, record: NetworkRecord) -> NetworkRecord:
    """Move an automatic subnet that something else now routes; keep a user's choice as it is."""
    if not record.auto_subnet:
        return record
    taken = _taken_by_others(record.interface, store, record)
    if not any(IPv4Network(record.subnet).overlaps(t) for t in taken):
        return record
    subnet = ipam.pick_subnet(taken)

    def move(data: dict) -> None:
        data["IPAM"]["Config"] = [{"Subnet": str(subnet), "Gateway": str(ipam.default_gateway(subnet))}]
    return store.update(record.id, move)


def bring_up(nl: Netlink, nft: Nft, store: NetworkStore, record: NetworkRecord) -> LiveNetwork:
    bridge = record.interface
    with machine_lock():
        record = _settle_subnet(store, record)
        subnet, gateway = IPv4Network(record.subnet), IPv4Address(record.gateway)
        if nl.link_index(bridge) is not None:
            nl.delete_link(bridge)  # left by a dead monitor: start from a clean one
        index = nl.add_bridge(bridge, mac_for(gateway), MTU)
        try:
            nl.add_address(index, str(gateway), subnet.prefixlen, str(subnet.broadcast_address))
        except BaseException:
            nl.delete_link(bridge)
            raise
    try:
        firewall.enable_forwarding(bridge)
        firewall.set_up(nft, bridge, str(subnet), record.internal)
    except BaseException:
        tear_down(nl, nft, bridge)
        raise
    return LiveNetwork(record, index)


def tear_down(nl: Netlink, nft: Nft, bridge: str) -> None:
    firewall.tear_down(nft, bridge)
    try:
        nl.delete_link(bridge)
    except NetlinkError as e:
        if e.errno != errno.ENODEV:
            raise


def leftovers(nl: Netlink, nft: Nft, bridge: str) -> bool:
    """Whether a dead monitor left this bridge or its table behind."""
    return nl.link_index(bridge) is not None or firewall.table_exists(nft, bridge)
