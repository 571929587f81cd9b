"""The live side of networking, kept by the monitor: networks that are up, containers' sandboxes, published
ports and the embedded DNS server.

The monitor is the one process per root that starts and reaps containers, so it is also the one that owns
their kernel network state: the allocators live here in memory (all starts go through this process, so no
locking is needed), and everything made here is undone by `detach`, by `shutdown` when the monitor exits,
or by `sweep` in the next monitor when one died.

Order matters in `attach` and `_plumb`: everything that touches /proc/sys/net, /proc/net or runs a program
(bridges, sysctls, iptables) happens in the host's namespace, outside the blocks where the thread is in the
container's; inside them, only netlink requests, the DNS socket and the new namespace's own IPv6 default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from ipaddress import IPv4Address
from typing import Any

from dockyard.errors import Conflict, NotFound
from dockyard.network import bridge, etc_files, firewall, ports
from dockyard.network.bridge import LiveNetwork
from dockyard.network.dns import DnsServer, Resolver
from dockyard.network.netlink import Netlink
from dockyard.network.netns import Namespaces
from dockyard.network.nft import Nft
from dockyard.network.sandbox import Endpoint, Sandbox, add_endpoint, wait_carrier
from dockyard.network.store import NetworkRecord, NetworkStore

# Containers as this package sees them (the engine's ContainerRecord has these; network/ does not import the
# engine, which sits above it): .id, .name, and .data, Docker's inspect document.
ContainerRecord = Any
# How settings reach a container's record: (container id, a function that changes its data in place).
UpdateContainer = Callable[[str, Callable[[dict], None]], None]
# The current names of containers, by id (a rename does not go through the monitor).
CurrentNames = Callable[[], dict[str, str]]
NAMES_REFRESH = 1.0  # seconds between re-reads of the names on a DNS miss


class NetworkRuntime(Resolver):
    def __init__(self, run_root: str, store: NetworkStore, update_container: UpdateContainer, selector=None,
                 add_timer: Callable[[float, Callable[[], None]], Any] | None = None,
                 current_names: CurrentNames | None = None) -> None:
        self.store = store
        self.update_container = update_container
        self.current_names = current_names
        self.names_read = 0.0
        self.ns = Namespaces(os.path.join(run_root, "netns"))
        self.live: dict[str, LiveNetwork] = {}
        self.sandboxes: dict[str, Sandbox] = {}
        self.dns = DnsServer(selector, self, add_timer) if selector is not None and add_timer else None
        self._nl: Netlink | None = None
        self._nft: Nft | None = None

    @property
    def nl(self) -> Netlink:
        if self._nl is None:
            self._nl = Netlink()
        return self._nl

    @property
    def nft(self) -> Nft:
        if self._nft is None:
            self._nft = Nft()
        return self._nft

    # --- the monitor's life ---------------------------------------------------------------------------------

    def sweep(self) -> None:
        """At monitor start: remove what a dead monitor left (namespaces, bridges, tables, rules)."""
        for container_id in self.ns.pinned():
            if container_id not in self.sandboxes:
                self.ns.remove(container_id)
        for record in self.store.all():
            if record.is_bridge and record.interface and record.id not in self.live:
                if bridge.leftovers(self.nl, self.nft, record.interface):
                    bridge.tear_down(self.nl, self.nft, record.interface)

    def shutdown(self) -> None:
        for sandbox in list(self.sandboxes.values()):
            self._dismantle(sandbox)
        for network_id in list(self.live):
            self.take_down(network_id)
        if self.dns is not None:
            self.dns.close_all()
        if self._nft is not None:
            self._nft.close()
        if self._nl is not None:
            self._nl.close()

    def take_down(self, network_id: str, interface: str | None = None) -> None:
        live = self.live.pop(network_id, None)
        if live is not None:
            bridge.tear_down(self.nl, self.nft, live.bridge)
        elif interface and bridge.leftovers(self.nl, self.nft, interface):
            bridge.tear_down(self.nl, self.nft, interface)

    def in_use(self, network_id: str) -> list[str]:
        return [s.container_id for s in self.sandboxes.values() if network_id in s.endpoints]

    def _up(self, record: NetworkRecord) -> LiveNetwork:
        live = self.live.get(record.id)
        if live is None:
            live = bridge.bring_up(self.nl, self.nft, self.store, record)
            self.live[record.id] = live
        return live

    # --- containers -----------------------------------------------------------------------------------------

    def attach(self, record: ContainerRecord,
               shares_with: ContainerRecord | None = None) -> tuple[str | None, Callable[[], None]]:
        """Give a container its network, in two steps: returns the path of its namespace (None: the runtime
        makes an empty one, or, for host or container: modes, joins another) and `plumb`, to be called before
        the container's process starts.

        The first step makes the namespace (loopback only) and reserves the published ports, so a port clash
        fails before anything is started. `plumb` does the rest: endpoints (veth pairs, addresses, routes),
        published ports' DNAT, the DNS server, /etc/hosts and resolv.conf, inspect's settings. The runtime's
        container setup (mounts, pivot_root...) does not look at interfaces, so the monitor runs `plumb` while
        the container's init sets itself up in the namespace (supervise.launch). On failure `plumb` undoes
        everything; `detach` undoes either step.

        `shares_with`: the container whose namespace a container: mode container joins (it sees that one's
        /etc/hosts and resolv.conf, as in Docker)."""
        data = record.data
        host, config = data["HostConfig"], data["Config"]
        mode = host.get("NetworkMode") or "default"
        if shares_with is not None:
            for key in ("HostsPath", "ResolvConfPath"):
                if data.get(key) and shares_with.data.get(key):
                    with open(shares_with.data[key]) as f:
                        etc_files.write(data[key], f.read())
            return None, _nothing
        if mode == "host" or mode.startswith("container:"):
            self._write_etc(record, None, host_network=mode == "host")
            return None, _nothing
        if record.id in self.sandboxes:  # attached twice without a detach: start from nothing
            self._dismantle(self.sandboxes[record.id])
        wanted = self._attached_networks(record)
        if not wanted:  # none, or disconnected from everything: loopback only
            self._write_etc(record, None)
            return None, _nothing
        lives = [self._up(net) for net, _ in wanted]
        sandbox = Sandbox(record.id, record.name, self.ns.path(record.id))
        sandbox.dns_servers = [s for s in host.get("Dns") or [] if ":" not in s]
        try:
            if not lives[0].record.internal:
                sandbox.bindings = ports.reserve(host, config, record.name)
            with self.ns.create(record.id), Netlink() as inner:
                disable_ipv6_on_new_links()
                inner.set_up(1)
        except BaseException:
            self._dismantle(sandbox)
            raise
        self.sandboxes[record.id] = sandbox  # from here on, detach finds (and undoes) it
        return sandbox.path, lambda: self._plumb(record, sandbox, lives, wanted)

    def _plumb(self, record: ContainerRecord, sandbox: Sandbox, lives: list[LiveNetwork],
               wanted: list[tuple[NetworkRecord, dict[str, Any]]]) -> None:
        """attach's second step: the endpoints, ports, DNS and files of a sandbox whose namespace exists."""
        primary = lives[0]
        made: list[tuple[LiveNetwork, IPv4Address]] = []
        try:
            addresses = []
            for live, (_, settings) in zip(lives, wanted):
                requested = _requested_address(settings)
                address = live.allocator.allocate(requested)
                made.append((live, address))
                addresses.append((address, requested is not None))
            user_network = any(not live.record.is_default_bridge for live in lives)
            with self.ns.inside(record.id) as netns_fd, Netlink() as inner:
                if user_network and self.dns is not None:
                    sandbox.dns = DnsServer.open_listener()
                for live, (_, settings), (address, static) in zip(lives, wanted, addresses):
                    add_endpoint(self.nl, inner, netns_fd, sandbox, live, address,
                                 list(settings.get("Aliases") or []),
                                 default_route=live is primary and not live.record.internal, static=static)
            for endpoint in sandbox.endpoints.values():  # (in the host's namespace again: its /sys)
                wait_carrier(endpoint)
            if sandbox.bindings:
                firewall.add_ports(self.nft, primary.bridge,
                                   [b.mapping(str(sandbox.primary.address)) for b in sandbox.bindings])
            if sandbox.dns is not None:
                self.dns.serve(record.id, sandbox.dns)
            self._write_etc(record, sandbox)
            self._record_settings(record.id, sandbox)
        except BaseException:
            for live, address in made:
                live.allocator.release(address)
            self._dismantle(sandbox)
            raise

    def detach(self, record: ContainerRecord) -> None:
        sandbox = self.sandboxes.pop(record.id, None)
        if sandbox is not None:
            self._dismantle(sandbox)
        else:
            self.ns.remove(record.id)  # a dead monitor's, or never attached
        if not record.data["HostConfig"].get("AutoRemove"):
            self._clear_settings(record.id)

    def attach_build(self, build_id: str) -> tuple[str, str]:
        """A namespace on the default bridge for one build's RUN steps, as dockerd's BuildKit gives them: an
        address, the default route and NAT; no published ports, no embedded DNS. Returns its path and the
        resolv.conf its steps see. detach_build undoes it (sweep does, after a crash)."""
        record = self.store.lookup("bridge")
        if record is None:
            raise NotFound("network bridge not found")
        live = self._up(record)
        sandbox = Sandbox(build_id, "build", self.ns.path(build_id))
        address = live.allocator.allocate(None)
        try:
            with self.ns.create(build_id) as netns_fd, Netlink() as inner:
                disable_ipv6_on_new_links()
                inner.set_up(1)
                add_endpoint(self.nl, inner, netns_fd, sandbox, live, address, [], default_route=True,
                             static=False)
            wait_carrier(sandbox.primary)
        except BaseException:
            live.allocator.release(address)
            self._dismantle(sandbox)
            raise
        self.sandboxes[build_id] = sandbox
        return sandbox.path, etc_files.resolv_conf([], [], [], embedded=False)

    def detach_build(self, build_id: str) -> None:
        sandbox = self.sandboxes.pop(build_id, None)
        if sandbox is not None:
            self._dismantle(sandbox)

    def _dismantle(self, sandbox: Sandbox) -> None:
        """Undo a sandbox: ports, DNS, addresses, then the namespace (the kernel then destroys the veths)."""
        self.sandboxes.pop(sandbox.container_id, None)
        primary = sandbox.primary
        if sandbox.bindings and primary is not None:
            firewall.remove_ports(self.nft, primary.network.bridge,
                                  [b.mapping(str(primary.address)) for b in sandbox.bindings])
        for binding in sandbox.bindings:
            binding.release()
        if self.dns is not None:
            self.dns.close(sandbox.container_id)
        if sandbox.dns is not None:
            sandbox.dns.close()  # (when it was never served)
        for endpoint in sandbox.endpoints.values():
            endpoint.network.allocator.release(endpoint.address)
        self.ns.remove(sandbox.container_id)

    def connect(self, record: ContainerRecord, network: NetworkRecord, settings: dict[str, Any]) -> None:
        """Add an endpoint to a running container."""
        sandbox = self.sandboxes.get(record.id)
        if sandbox is None:
            raise Conflict(f"container {record.id} is not running")
        live = self._up(network)
        requested = _requested_address(settings)
        address = live.allocator.allocate(requested)
        try:
            with self.ns.inside(record.id) as netns_fd:
                with Netlink() as inner:
                    add_endpoint(self.nl, inner, netns_fd, sandbox, live, address,
                                 list(settings.get("Aliases") or []),
                                 default_route=sandbox.primary is None and not network.internal,
                                 static=requested is not None)
                    if not network.is_default_bridge and sandbox.dns is None and self.dns is not None:
                        sandbox.dns = DnsServer.open_listener()
                        self.dns.serve(record.id, sandbox.dns)
        except BaseException:
            live.allocator.release(address)
            raise
        wait_carrier(sandbox.endpoints[network.id])
        self._record_settings(record.id, sandbox)

    def disconnect(self, record: ContainerRecord, network: NetworkRecord) -> None:
        sandbox = self.sandboxes.get(record.id)
        if sandbox is None or network.id not in sandbox.endpoints:
            return
        was_primary = sandbox.primary is sandbox.endpoints[network.id]
        if was_primary and sandbox.bindings:
            firewall.remove_ports(self.nft, network.interface,
                                  [b.mapping(str(sandbox.primary.address)) for b in sandbox.bindings])
            for binding in sandbox.bindings:
                binding.release()
            sandbox.bindings = []
        endpoint = sandbox.endpoints.pop(network.id)
        self.nl.delete_link(endpoint.host_veth)
        endpoint.network.allocator.release(endpoint.address)
        user_networks = [e for e in sandbox.endpoints.values() if not e.network.record.is_default_bridge]
        if sandbox.dns is not None and not user_networks:
            if self.dns is not None:
                self.dns.close(record.id)
            sandbox.dns.close()
            sandbox.dns = None
        self._record_settings(record.id, sandbox)

    def _attached_networks(self, record: ContainerRecord) -> list[tuple[NetworkRecord, dict[str, Any]]]:
        """The bridge networks of a container, in the order it joined them (its NetworkMode first)."""
        out = []
        for name, settings in ((record.data.get("NetworkSettings") or {}).get("Networks") or {}).items():
            settings = settings or {}
            network = (self.store.lookup(settings["NetworkID"]) if settings.get("NetworkID") else None) \
                or self.store.lookup(name)
            if network is None:
                raise NotFound(f"network {name} not found")
            if network.is_bridge:
                out.append((network, settings))
        return out

    # --- what the container sees and what inspect shows -----------------------------------------------------

    def _write_etc(self, record: ContainerRecord, sandbox: Sandbox | None,
                   host_network: bool = False) -> None:
        data = record.data
        host, config = data["HostConfig"], data["Config"]
        primary = sandbox.primary if sandbox else None
        embedded = sandbox is not None and sandbox.dns is not None
        if data.get("HostsPath"):
            gateway = str(primary.network.gateway) if primary else self._default_gateway()
            etc_files.write(data["HostsPath"], etc_files.hosts(
                config.get("Hostname") or "", config.get("Domainname") or "",
                str(primary.address) if primary else None, list(host.get("ExtraHosts") or []), gateway))
        if data.get("ResolvConfPath"):
            etc_files.write(data["ResolvConfPath"], etc_files.resolv_conf(
                [] if embedded else list(host.get("Dns") or []), list(host.get("DnsSearch") or []),
                list(host.get("DnsOptions") or []), embedded, host_network))

    def _default_gateway(self) -> str | None:
        for live in self.live.values():
            if live.record.is_default_bridge:
                return str(live.gateway)
        record = self.store.lookup("bridge")
        return record.gateway if record else None

    def _record_settings(self, container_id: str, sandbox: Sandbox) -> None:
        def change(data: dict) -> None:
            data["NetworkSettings"] = settings_view(data, sandbox)
        self.update_container(container_id, change)

    def _clear_settings(self, container_id: str) -> None:
        def change(data: dict) -> None:
            settings = data.get("NetworkSettings") or {}
            data["NetworkSettings"] = stopped_view(settings)
        try:
            self.update_container(container_id, change)
        except NotFound:
            pass

    # --- the DNS server's questions (Resolver) --------------------------------------------------------------

    def _user_endpoints(self, container_id: str) -> list[Endpoint]:
        sandbox = self.sandboxes.get(container_id)
        if sandbox is None:
            return []
        return [e for e in sandbox.endpoints.values() if not e.network.record.is_default_bridge]

    def lookup(self, container_id: str, name: str) -> list[str] | None:
        found = self._lookup(container_id, name)
        if found is None and self._refresh_names():
            found = self._lookup(container_id, name)  # a container renamed since it started
        return found

    def _refresh_names(self) -> bool:
        import time

        now = time.monotonic()
        if self.current_names is None or now - self.names_read < NAMES_REFRESH:
            return False
        self.names_read = now
        names = self.current_names()
        changed = False
        for sandbox in self.sandboxes.values():
            if names.get(sandbox.container_id, sandbox.name) != sandbox.name:
                sandbox.name = names[sandbox.container_id]
                changed = True
        return changed

    def _lookup(self, container_id: str, name: str) -> list[str] | None:
        found: list[str] = []
        for mine in self._user_endpoints(container_id):
            network = mine.network.record
            suffix = "." + network.name.lower()
            short = name.removesuffix(suffix)
            for other in self.sandboxes.values():
                endpoint = other.endpoints.get(network.id)
                if endpoint is None:
                    continue
                if short in other.names() or short in (a.lower() for a in endpoint.aliases):
                    if str(endpoint.address) not in found:
                        found.append(str(endpoint.address))
        return found or None

    def reverse(self, container_id: str, address: str) -> str | None:
        for mine in self._user_endpoints(container_id):
            network = mine.network.record
            for other in self.sandboxes.values():
                endpoint = other.endpoints.get(network.id)
                if endpoint is not None and str(endpoint.address) == address:
                    return f"{other.name}.{network.name}"
        return None

    def upstreams(self, container_id: str) -> list[str]:
        endpoints = self._user_endpoints(container_id)
        if endpoints and all(e.network.record.internal for e in endpoints):
            return []
        sandbox = self.sandboxes.get(container_id)
        return (sandbox.dns_servers if sandbox else []) or etc_files.host_nameservers()


def _nothing() -> None:
    pass


def disable_ipv6_on_new_links() -> None:
    """Inside a new namespace: no IPv6 on the interfaces made after this (our networks are IPv4 only), as
    Docker does without --ipv6; loopback keeps ::1. /proc/sys/net is the calling thread's namespace's."""
    try:
        with open("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w") as f:
            f.write("1")
    except FileNotFoundError:
        pass  # a kernel without IPv6


def _requested_address(settings: dict[str, Any]) -> IPv4Address | None:
    wanted = (settings.get("IPAMConfig") or {}).get("IPv4Address")
    return IPv4Address(wanted) if wanted else None


def endpoint_view(settings: dict[str, Any], endpoint: Endpoint, container_id: str) -> dict[str, Any]:
    network = endpoint.network
    aliases = list(endpoint.aliases)
    if not network.record.is_default_bridge and container_id[:12] not in aliases:
        aliases.append(container_id[:12])
    return {**settings, "Aliases": aliases or None, "NetworkID": network.record.id,
            "EndpointID": endpoint.endpoint_id,
            "Gateway": "" if network.record.internal else str(network.gateway),
            "IPAddress": str(endpoint.address), "IPPrefixLen": network.subnet.prefixlen, "IPv6Gateway": "",
            "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": endpoint.mac}


def settings_view(data: dict[str, Any], sandbox: Sandbox) -> dict[str, Any]:
    """NetworkSettings of a running container, as Docker's inspect shows it."""
    old = data.get("NetworkSettings") or {}
    networks = dict(old.get("Networks") or {})
    for name, settings in list(networks.items()):
        endpoint = next((e for e in sandbox.endpoints.values()
                         if e.network.record.id == (settings or {}).get("NetworkID")
                         or e.network.record.name == name), None)
        if endpoint is not None:
            networks[name] = endpoint_view(settings or {}, endpoint, sandbox.container_id)
    for endpoint in sandbox.endpoints.values():
        if endpoint.network.record.name not in networks:
            networks[endpoint.network.record.name] = endpoint_view({}, endpoint, sandbox.container_id)
    view: dict[str, Any] = {
        "Bridge": "", "SandboxID": sandbox.container_id, "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": ports.ports_view(data["Config"], sandbox.bindings),
        "SandboxKey": sandbox.path, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
        "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "", "Networks": networks,
    }
    default = next((e for e in sandbox.endpoints.values() if e.network.record.is_default_bridge), None)
    if default is not None:  # Docker fills the top-level fields for the default bridge only
        view.update(EndpointID=default.endpoint_id, Gateway=str(default.network.gateway),
                    IPAddress=str(default.address), IPPrefixLen=default.network.subnet.prefixlen,
                    MacAddress=default.mac)
    return view


RUNTIME_FIELDS = ("EndpointID", "Gateway", "IPAddress", "IPv6Gateway", "GlobalIPv6Address", "MacAddress")


def stopped_view(settings: dict[str, Any]) -> dict[str, Any]:
    """NetworkSettings once the container has stopped: its networks stay, their addresses go."""
    networks = {}
    for name, entry in (settings.get("Networks") or {}).items():
        entry = dict(entry or {})
        for key in RUNTIME_FIELDS:
            if key in entry:
                entry[key] = ""
        for key in ("IPPrefixLen", "GlobalIPv6PrefixLen"):
            if key in entry:
                entry[key] = 0
        networks[name] = entry
    return {**settings, **{k: "" for k in RUNTIME_FIELDS}, "IPPrefixLen": 0, "SandboxKey": "",
            "SandboxID": "", "Ports": {}, "Networks": networks}
