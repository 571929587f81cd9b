"""The network service: networks as records (create, list, inspect, remove, prune, connect, disconnect), and
the seam through which the monitor gives containers their network (attach before a container's init is
created, detach after it has exited, also for containers a dead monitor left behind).

The kernel side (bridges, veths, NAT, published ports, embedded DNS) lives in dockyard/network/, driven by
one NetworkRuntime that exists in the monitor only: it is the process that starts every container, so
requests that change live state (connect/disconnect of a running container, rm/prune of a network that is
up) are sent to it; with no monitor running nothing is live, and the command does the work itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from dockyard.engine.container_store import ContainerRecord
from dockyard.errors import Conflict, Forbidden, InvalidArgument, NotFound
from dockyard.label_filters import labels_match
from dockyard.network.store import PREDEFINED, NetworkRecord, NetworkStore
from dockyard.timeutil import rfc3339

DEFAULT_BRIDGE = "dockyard0"


def default_bridge_name(root: str) -> str:
    """dockyard0 for the default root; other roots (tests, a second engine) get their own bridge."""
    from dockyard.config import DEFAULT_ROOT

    if os.environ.get("DOCKYARD_BRIDGE"):
        return os.environ["DOCKYARD_BRIDGE"]
    if root == DEFAULT_ROOT:
        return DEFAULT_BRIDGE
    import hashlib  # (here: it loads OpenSSL, ~2 MiB of the monitor's memory, which the default root spares)

    return "dy" + hashlib.sha256(root.encode()).hexdigest()[:10]


def user_bridge_name(network_id: str) -> str:
    return "dy-" + network_id[:12]


def _network_data(name: str, network_id: str, driver: str, subnet: str | None, gateway: str | None,
                  ip_range: str | None, internal: bool, attachable: bool, labels: dict[str, str],
                  options: dict[str, str], auto: bool) -> dict[str, Any]:
    config = []
    if subnet:
        entry = {"Subnet": subnet, "Gateway": gateway}
        if ip_range:
            entry["IPRange"] = ip_range
        config.append(entry)
    return {"Name": name, "Id": network_id, "Created": rfc3339(), "Scope": "local", "Driver": driver,
            "EnableIPv6": False, "IPAM": {"Driver": "default", "Options": None if name in PREDEFINED else {},
                                          "Config": config},
            "Internal": internal, "Attachable": attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
            "ConfigOnly": False, "Options": options, "Labels": labels, "Dockyard": {"AutoSubnet": auto}}


class NetworkService:
    def __init__(self, engine) -> None:
        self.engine = engine
        self.records = NetworkStore(engine.db)
        self.runtime = None  # a NetworkRuntime, in the monitor only (see serve_in_monitor)
        self._predefined_checked = False

    # --- records --------------------------------------------------------------------------------------------

    def ensure_predefined(self) -> None:
        """bridge, host and none exist in every root, made by whichever process needs them first."""
        if self._predefined_checked:
            return
        rows = self.records.db.query("SELECT name FROM networks WHERE name IN ('bridge', 'host', 'none')")
        if len(rows) < 3:
            from dockyard.network import ipam

            subnet = ipam.pick_subnet(self._taken_subnets())
            bridge = default_bridge_name(self.engine.root_dir)
            options = {"com.docker.network.bridge.default_bridge": "true",
                       "com.docker.network.bridge.enable_icc": "true",
                       "com.docker.network.bridge.enable_ip_masquerade": "true",
                       "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                       "com.docker.network.bridge.name": bridge, "com.docker.network.driver.mtu": "1500"}
            records = []
            for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
                network_id = os.urandom(32).hex()
                is_bridge = name == "bridge"
                data = _network_data(name, network_id, driver, str(subnet) if is_bridge else None,
                                     str(ipam.default_gateway(subnet)) if is_bridge else None, None, False,
                                     False, {}, options if is_bridge else {}, auto=is_bridge)
                records.append(NetworkRecord(network_id, name, time.time(), data))
            self.records.add_missing(records)
        self._predefined_checked = True

    def _taken_subnets(self) -> list:
        from ipaddress import IPv4Network

        from dockyard.network import ipam

        taken = [net for net, _ in ipam.host_routes()] + ipam.nameservers()
        taken += [IPv4Network(r.subnet) for r in self.records.all() if r.subnet]
        return taken

    def get(self, name_or_id: str) -> NetworkRecord:
        self.ensure_predefined()
        return self.records.get(name_or_id)

    def all(self) -> list[NetworkRecord]:
        self.ensure_predefined()
        return self.records.all()

    def create(self, name: str, driver: str = "bridge", subnet: str | None = None, gateway: str | None = None,
               ip_range: str | None = None, internal: bool = False, attachable: bool = False,
               labels: dict[str, str] | None = None, options: dict[str, str] | None = None) -> NetworkRecord:
        from dockyard.network import ipam

        self.ensure_predefined()
        _check_network_name(name)
        driver = driver or "bridge"
        if driver != "bridge":
            if driver in ("host", "null"):
                raise Forbidden(f"only one instance of \"{driver}\" network is allowed")
            raise NotFound(f'plugin "{driver}" not found')
        if self.records.lookup(name) is not None and self.records.get(name).name == name:
            raise Conflict(f"network with name {name} already exists")
        taken = self._taken_subnets()
        if subnet:
            network = ipam.parse_subnet(subnet)
            ours = [r for r in self.records.all() if r.subnet]
            if any(network.overlaps(ipam.parse_subnet(r.subnet)) for r in ours):
                raise Forbidden("Pool overlaps with other one on this address space")
        else:
            if gateway or ip_range:
                raise InvalidArgument("gateway and ip-range need a subnet (--subnet)")
            network = ipam.pick_subnet(taken)
        gw = ipam.parse_address(gateway, "gateway") if gateway else ipam.default_gateway(network)
        if gw not in network:
            raise Forbidden(f"no matching subnet for gateway {gateway}")
        if ip_range:
            parsed_range = ipam.parse_subnet(ip_range)
            if not parsed_range.subnet_of(network):
                raise Forbidden(f"no matching subnet for range {ip_range}")
        network_id = os.urandom(32).hex()
        options = dict(options or {})
        options.setdefault("com.docker.network.bridge.name", user_bridge_name(network_id))
        if len(options["com.docker.network.bridge.name"]) > 15:
            raise InvalidArgument("bridge name (com.docker.network.bridge.name) must be at most 15 "
                                  "characters")
        data = _network_data(name, network_id, driver, str(network), str(gw), ip_range, internal, attachable,
                             dict(labels or {}), options, auto=not subnet)
        record = NetworkRecord(network_id, name, time.time(), data)
        self.records.add(record)
        return record

    def inspect(self, record: NetworkRecord) -> dict[str, Any]:
        """Docker's inspect document: the record and the running containers attached to it."""
        data = {k: v for k, v in record.data.items() if k != "Dockyard"}
        containers = {}
        for container in self._attached(record):
            settings = _settings_on(container, record) or {}
            if container.running and settings.get("IPAddress"):
                containers[container.id] = {
                    "Name": container.name, "EndpointID": settings.get("EndpointID", ""),
                    "MacAddress": settings.get("MacAddress", ""),
                    "IPv4Address": f"{settings['IPAddress']}/{settings.get('IPPrefixLen', 0)}",
                    "IPv6Address": ""}
        data["Containers"] = containers
        return {"Name": data.pop("Name"), "Id": data.pop("Id"), **data}

    def _attached(self, record: NetworkRecord) -> list[ContainerRecord]:
        return [c for c in self.engine.containers.records.all() if _settings_on(c, record) is not None]

    def active_endpoints(self, record: NetworkRecord) -> list[ContainerRecord]:
        """Containers running on the network (outside the monitor, a record saying running is checked: its
        monitor may have died)."""
        attached = self._attached(record)
        if self.runtime is None:
            attached = [self.engine.containers.refresh(c) for c in attached]
        return [c for c in attached if c.running or c.state.get("Restarting")]

    def remove(self, name_or_id: str) -> NetworkRecord:
        record = self.get(name_or_id)
        if record.name in PREDEFINED:
            raise Forbidden(f"{record.name} is a pre-defined network and cannot be removed")
        if self.runtime is None and self.engine.monitor_alive():
            self.engine.monitor().request({"op": "network", "action": "remove", "id": record.id})
            return record
        if self.active_endpoints(record) or (self.runtime is not None and self.runtime.in_use(record.id)):
            raise Forbidden(f"error while removing network: network {record.name} id {record.id} has active "
                            f"endpoints")
        self._take_down(record)
        self.records.delete(record.id)
        return record

    def _take_down(self, record: NetworkRecord) -> None:
        if self.runtime is not None:
            self.runtime.take_down(record.id, record.interface)
            return
        # No monitor: nothing is up, but a dead one may have left the bridge behind.
        from dockyard.network import bridge
        from dockyard.network.netlink import Netlink
        from dockyard.network.nft import Nft

        nft = Nft()
        with Netlink() as nl:
            if bridge.leftovers(nl, nft, record.interface):
                bridge.tear_down(nl, nft, record.interface)
        nft.close()

    def prune(self, labels: list[str] | None = None, until: float | None = None,
              not_labels: list[str] | None = None) -> list[str]:
        """Remove user networks no running container uses (and made before `until`); their names."""
        removed = []
        for record in self.all():
            if record.name in PREDEFINED or not labels_match(record.data.get("Labels") or {}, labels or (),
                                                             not_labels or ()):
                continue
            if until is not None and record.created >= until:
                continue
            if self._attached_running(record):
                continue
            try:
                self.remove(record.id)
            except (Forbidden, Conflict, NotFound):
                continue
            removed.append(record.name)
        return removed

    def _attached_running(self, record: NetworkRecord) -> bool:
        return bool(self.active_endpoints(record))

    # --- containers' endpoints ------------------------------------------------------------------------------

    def endpoints_for_create(self, host: dict[str, Any], networking: dict[str, Any] | None) -> dict[str, Any]:
        """NetworkSettings.Networks of a new container (validated: unknown networks, --ip, aliases)."""
        from dockyard.network.etc_files import extra_host

        for entry in host.get("ExtraHosts") or []:
            extra_host(entry, "host-gateway")  # the format only: the gateway is known at start
        mode = host.get("NetworkMode") or "default"
        if mode.startswith("container:"):
            if not mode.split(":", 1)[1]:
                raise InvalidArgument("--network: container name or id is required")
            if host.get("PortBindings") or host.get("PublishAllPorts"):
                raise InvalidArgument("conflicting options: port publishing and the container type network "
                                      "mode")
            return {}
        name = "bridge" if mode == "default" else mode
        network = self.get(name)
        configs = (networking or {}).get("EndpointsConfig") or {}
        config = dict(configs.get(mode) or configs.get(name) or configs.get(network.id) or {})
        _check_endpoint_config(network, config)
        return {network.name: _endpoint_settings(network, config)}

    def connect(self, name_or_id: str, container: str, aliases: list[str] | None = None,
                ip: str | None = None) -> None:
        network = self.get(name_or_id)
        record = self.engine.containers.get(container)
        mode = record.data["HostConfig"].get("NetworkMode") or "default"
        if network.name in ("host", "none") or network.driver in ("host", "null"):
            raise Forbidden("container cannot be disconnected from host network or connected to host network"
                            if network.name == "host" else
                            "container cannot be connected to multiple networks with one of the networks in "
                            "private (none) mode")
        if mode == "host" or mode.startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or host cannot be "
                            "connected to any other network")
        if mode == "none":
            raise Forbidden("container cannot be connected to multiple networks with one of the networks in "
                            "private (none) mode")
        if _settings_on(record, network) is not None:
            raise Forbidden(f"endpoint with name {record.name} already exists in network {network.name}")
        config: dict[str, Any] = {"Aliases": list(aliases or []) or None}
        if ip:
            config["IPAMConfig"] = {"IPv4Address": ip}
        _check_endpoint_config(network, config)
        settings = _endpoint_settings(network, config)
        if record.running:
            self._in_monitor({"op": "network", "action": "connect", "id": network.id, "container": record.id,
                              "settings": settings})
            return
        self._set_endpoint(record.id, network.name, settings)

    def disconnect(self, name_or_id: str, container: str, force: bool = False) -> None:
        network = self.get(name_or_id)
        record = self.engine.containers.get(container)
        if network.name == "host" or (record.data["HostConfig"].get("NetworkMode") == "host"):
            raise Forbidden("container cannot be disconnected from host network or connected to host network")
        if _settings_on(record, network) is None:
            raise Forbidden(f"container {record.id} is not connected to network {network.name}")
        if record.running:
            self._in_monitor({"op": "network", "action": "disconnect", "id": network.id,
                              "container": record.id})
            return
        self._set_endpoint(record.id, _settings_key(record, network), None)

    def _in_monitor(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.runtime is not None:
            return self.monitor_request(request)
        return self.engine.monitor().request(request)

    def _set_endpoint(self, container_id: str, key: str, settings: dict[str, Any] | None) -> None:
        def change(data: dict) -> None:
            networks = dict((data.get("NetworkSettings") or {}).get("Networks") or {})
            if settings is None:
                networks.pop(key, None)
            else:
                networks[key] = settings
            data.setdefault("NetworkSettings", {})["Networks"] = networks
        self.engine.containers.records.update(container_id, change)

    # --- the monitor's seam ---------------------------------------------------------------------------------

    def serve_in_monitor(self, selector, add_timer) -> None:
        """Called once by the monitor before it serves: builds the runtime, sweeps a dead one's leftovers."""
        from dockyard.network.runtime import NetworkRuntime

        self.ensure_predefined()
        self.runtime = NetworkRuntime(self.engine.run_root, self.records,
                                      self.engine.containers.records.update, selector, add_timer,
                                      current_names=self._container_names)
        self.runtime.sweep()

    def _container_names(self) -> dict[str, str]:
        return {row["id"]: row["name"] for row in self.engine.db.query("SELECT id, name FROM containers")}

    def stop_in_monitor(self) -> None:
        if self.runtime is not None:
            self.runtime.shutdown()
            self.runtime = None

    def _live(self):
        if self.runtime is None:  # used outside a monitor (tools, tests): no DNS, nothing swept
            from dockyard.network.runtime import NetworkRuntime

            self.runtime = NetworkRuntime(self.engine.run_root, self.records,
                                          self.engine.containers.records.update)
        return self.runtime

    def monitor_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """A network request sent to the monitor (op "network")."""
        action = request.get("action")
        if action == "remove":
            self.remove(request["id"])
        elif action in ("connect", "disconnect"):
            network = self.get(request["id"])
            record = self.engine.containers.get(request["container"])
            if action == "connect":
                if _settings_on(record, network) is not None:
                    raise Forbidden(f"endpoint with name {record.name} already exists in network "
                                    f"{network.name}")
                self._set_endpoint(record.id, network.name, request["settings"])
                record = self.engine.containers.records.get(record.id)
                if record.running:
                    try:
                        self._live().connect(record, network, request["settings"])
                    except BaseException:
                        self._set_endpoint(record.id, network.name, None)
                        raise
            else:
                if record.running:
                    self._live().disconnect(record, network)
                self._set_endpoint(record.id, _settings_key(record, network), None)
        else:
            raise InvalidArgument(f"unknown network request {action!r}")
        return {"ok": True}

    def attach(self, record: ContainerRecord) -> tuple[str | None, Callable[[], None]]:
        """Prepare the container's network: a network namespace path to join, or None for a new one (with
        HostConfig.NetworkMode "host" the spec keeps the host's namespace whatever this returns), and the
        function that finishes the job, to call before the container's process starts (see
        NetworkRuntime.attach)."""
        mode = record.data["HostConfig"].get("NetworkMode") or "default"
        if mode.startswith("container:"):
            other = self.engine.containers.get(mode.split(":", 1)[1])
            if not other.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            _, plumb = self._live().attach(record, shares_with=other)
            return f"/proc/{other.state['Pid']}/ns/net", plumb
        return self._live().attach(record)

    def detach(self, record: ContainerRecord) -> None:
        """Undo what attach made (also for a container whose monitor died)."""
        self._live().detach(record)

    def attach_build(self, build_id: str) -> tuple[str, str]:
        """A namespace on the default bridge for a build's RUN steps: (its path, the resolv.conf they see)."""
        return self._live().attach_build(build_id)

    def detach_build(self, build_id: str) -> None:
        self._live().detach_build(build_id)


def _check_network_name(name: str) -> None:
    import re

    if not name or not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name):
        raise InvalidArgument(f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")


def _check_endpoint_config(network: NetworkRecord, config: dict[str, Any]) -> None:
    ip = (config.get("IPAMConfig") or {}).get("IPv4Address")
    user_network = network.is_bridge and not network.is_default_bridge
    if ip:
        if not user_network:
            raise InvalidArgument("user specified IP address is supported on user defined networks only")
        if network.auto_subnet:
            raise InvalidArgument("user specified IP address is supported only when connecting to networks "
                                  "with user configured subnets")
        from ipaddress import IPv4Network

        from dockyard.network import ipam

        if ipam.parse_address(ip) not in IPv4Network(network.subnet):
            raise InvalidArgument(f"Invalid address {ip}: It does not belong to any of this network's "
                                  f"subnets")
    if config.get("Aliases") and not user_network:
        raise InvalidArgument("network-scoped alias is supported only for containers in user defined "
                              "networks")


def _endpoint_settings(network: NetworkRecord, config: dict[str, Any]) -> dict[str, Any]:
    ipam_config = config.get("IPAMConfig") or None
    if ipam_config and not any(ipam_config.values()):
        ipam_config = None
    return {"IPAMConfig": ipam_config, "Links": config.get("Links"), "Aliases": config.get("Aliases") or None,
            "NetworkID": network.id, "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "MacAddress": "",
            "DriverOpts": config.get("DriverOpts")}


def _settings_key(record: ContainerRecord, network: NetworkRecord) -> str:
    networks = (record.data.get("NetworkSettings") or {}).get("Networks") or {}
    for key, settings in networks.items():
        if (settings or {}).get("NetworkID") == network.id or key == network.name:
            return key
    return network.name


def _settings_on(record: ContainerRecord, network: NetworkRecord) -> dict[str, Any] | None:
    networks = (record.data.get("NetworkSettings") or {}).get("Networks") or {}
    for key, settings in networks.items():
        if (settings or {}).get("NetworkID") == network.id or (key == network.name and not (settings or {})
                                                                .get("NetworkID")):
            return settings or {}
    return None
