"""User-defined networks: the network commands, Docker's errors, embedded DNS, connect/disconnect and
isolation."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from tests.network.helpers import (
    bridge_of,
    free_port,
    inspect,
    links,
    pins,
    port_map,
    random_subnet,
    wait_for,
)

TCP_QUERY = """
import socket, struct, sys
from dockyard.network.dns import encode_name
s = socket.create_connection(("127.0.0.11", 53), timeout=5)
for i, name in enumerate(sys.argv[1:]):
    q = struct.pack("!HHHHHH", i, 0x0100, 1, 0, 0, 0) + encode_name(name) + struct.pack("!HH", 1, 1)
    s.sendall(struct.pack("!H", len(q)) + q)
for _ in sys.argv[1:]:
    size = struct.unpack("!H", s.recv(2, socket.MSG_WAITALL))[0]
    answer = s.recv(size, socket.MSG_WAITALL)
    print(socket.inet_ntoa(answer[-4:]))
"""


def resolve(dy, container: str, name: str) -> str:
    """What nslookup inside a container says (empty when the name is unknown)."""
    out = dy("exec", container, "nslookup", name, check=False).stdout.decode()
    return out.split("Name:", 1)[1] if "Name:" in out else ""


def test_create_ls_inspect_rm_and_errors(dy, busybox):
    subnet = random_subnet()
    network_id = dy.out("network", "create", "--subnet", subnet, "--label", "team=net", "front").strip()
    assert len(network_id) == 64
    lines = dy.out("network", "ls").splitlines()
    assert lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    assert [line.split()[1] for line in lines[1:]] == ["bridge", "front", "host", "none"]
    assert f"{network_id[:12]}   front     bridge    local" in lines
    assert dy.out("network", "ls", "-q", "--filter", "name=front") == network_id[:12] + "\n"
    custom = dy.out("network", "ls", "--format", "{{.Name}} {{.Driver}}", "-f", "type=custom")
    assert custom == "front bridge\n"
    doc = json.loads(dy.out("network", "inspect", "front"))[0]
    assert doc["Id"] == network_id and doc["Driver"] == "bridge" and doc["Scope"] == "local"
    assert doc["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": subnet.replace(".0/24", ".1")}]
    assert doc["Labels"] == {"team": "net"} and doc["Containers"] == {} and doc["Internal"] is False
    assert dy.out("network", "inspect", "-f", "{{.Name}}", network_id[:10]) == "front\n"
    assert dy.out("inspect", "-f", "{{.Driver}}", "front") == "bridge\n"  # the generic inspect finds networks

    def error(*args: str) -> str:
        result = dy(*args, check=False)
        assert result.returncode != 0
        return result.stderr.decode()
    assert "Pool overlaps with other one on this address space" in error("network", "create", "--subnet",
                                                                           subnet, "other")
    assert "network with name front already exists" in error("network", "create", "front")
    assert "network nosuch not found" in error("network", "inspect", "nosuch")
    assert "network nosuch not found" in error("network", "rm", "nosuch")
    assert "bridge is a pre-defined network and cannot be removed" in error("network", "rm", "bridge")
    assert 'plugin "overlay2x" not found' in error("network", "create", "-d", "overlay2x", "x")
    assert "no matching subnet for gateway" in error("network", "create", "--subnet", random_subnet(),
                                                     "--gateway", "192.0.2.1", "gw")

    dy("run", "-d", "--name", "member", "--network", "front", "busybox", "sleep", "100")
    in_use = error("network", "rm", "front")
    assert f"error while removing network: network front id {network_id} has active endpoints" in in_use
    members = json.loads(dy.out("network", "inspect", "front"))[0]["Containers"]
    (entry,) = members.values()
    assert entry["Name"] == "member" and entry["IPv4Address"].startswith(subnet.rsplit(".", 1)[0])
    dy("rm", "-f", "member")
    assert dy.out("network", "rm", "front") == "front\n"
    assert "front" not in dy.out("network", "ls")


def test_prune_keeps_networks_in_use(dy, busybox):
    dy("network", "create", "unused1")
    dy("network", "create", "--label", "keep=yes", "unused2")
    dy("network", "create", "busy")
    dy("run", "-d", "--name", "bb", "--network", "busy", "busybox", "sleep", "100")
    assert dy.out("network", "prune", "-f", "--filter", "until=1h") == ""  # all made just now
    out = dy.out("network", "prune", "-f", "--filter", "label!=keep=yes")
    assert out == "Deleted Networks:\nunused1\n"
    assert dy.out("network", "ls", "--format", "{{.Name}}").split() == ["bridge", "busy", "host", "none",
                                                                         "unused2"]


def test_names_and_aliases_resolve_on_user_networks(dy, busybox):
    dy("network", "create", "app")
    server = dy.out("run", "-d", "--name", "db", "--network", "app", "--network-alias", "database",
                    "busybox", "sleep", "100").strip()
    dy("run", "-d", "--name", "client", "--network", "app", "busybox", "sleep", "100")
    address = inspect(dy, "db")["NetworkSettings"]["Networks"]["app"]["IPAddress"]
    assert inspect(dy, "db")["NetworkSettings"]["Networks"]["app"]["Aliases"] == ["database", server[:12]]
    resolv = dy.out("exec", "client", "cat", "/etc/resolv.conf")
    assert "nameserver 127.0.0.11" in resolv
    for name in ("db", "database", server[:12], "db.app", "DB"):
        assert address in resolve(dy, "client", name), name
    assert "db.app" in dy.out("exec", "client", "nslookup", address)
    assert dy.out("exec", "client", "ping", "-c1", "-W2", "database").count("1 packets received") == 1
    missing = dy("exec", "client", "nslookup", "nosuchcontainer.invalid", check=False).stdout.decode()
    assert "NXDOMAIN" in missing or "can't find" in missing
    # Names outside the network go to the host's resolvers.
    assert "Address" in resolve(dy, "client", "deb.debian.org")
    # Over TCP too (what a resolver falls back to for long answers), several queries on one connection.
    sandbox = inspect(dy, "client")["NetworkSettings"]["SandboxKey"]
    tcp = subprocess.run(["nsenter", f"--net={sandbox}", sys.executable, "-c", TCP_QUERY, "db", "database"],
                         capture_output=True, text=True, check=False)
    assert tcp.stdout.split() == [address, address], tcp.stderr
    # A rename reaches the DNS server (renames do not go through the monitor: it re-reads names on a miss).
    dy("rename", "db", "db2")
    assert address in wait_for(lambda: resolve(dy, "client", "db2"), timeout=10)
    # The default bridge has no names, as in Docker.
    dy("run", "-d", "--name", "plain", "busybox", "sleep", "100")
    assert resolve(dy, "plain", "db") == ""


def test_failure_while_plumbing_leaves_nothing(dy, busybox):
    """Endpoints are made while the container's init sets itself up (supervise.launch): an error there (an
    address taken) kills that init and leaves no pin, veth, port reservation or port rule behind."""
    subnet = random_subnet()
    dy("network", "create", "--subnet", subnet, "plumbnet")
    fixed = subnet.replace(".0/24", ".78")
    dy("run", "-d", "--name", "holder", "--network", "plumbnet", "--ip", fixed, "busybox", "sleep", "100")
    port = free_port()
    failed = dy("run", "-d", "--name", "late", "--network", "plumbnet", "--ip", fixed, "-p", f"{port}:80",
                "busybox", "sleep", "100", check=False)
    assert failed.returncode == 125 and f"Address already in use: {fixed}".encode() in failed.stderr
    late = inspect(dy, "late")
    assert not late["State"]["Running"] and late["NetworkSettings"]["Ports"] == {}
    assert pins(dy) == [inspect(dy, "holder")["Id"]] and links("vdy" + late["Id"][:6]) == []
    assert f" {port} " not in port_map(bridge_of(dy, "plumbnet"))
    with socket.socket() as s:
        s.bind(("0.0.0.0", port))  # the reservation went with it
    dy("rm", "-f", "holder")
    ok = dy("start", "late", check=False)  # the address is free now: the same container starts
    assert ok.returncode == 0, ok.stderr
    assert inspect(dy, "late")["NetworkSettings"]["Networks"]["plumbnet"]["IPAddress"] == fixed

def test_static_ip_dns_servers_and_internal(dy, busybox):
    subnet = random_subnet()
    dy("network", "create", "--subnet", subnet, "fixed")
    fixed = subnet.replace(".0/24", ".77")
    out = dy.out("run", "--rm", "--network", "fixed", "--ip", fixed, "busybox", "ip", "-4", "-o", "addr",
                 "show", "eth0")
    assert f"inet {fixed}/24" in out
    bad = dy("run", "--rm", "--network", "fixed", "--ip", "192.0.2.5", "busybox", "true", check=False)
    assert bad.returncode == 125 and b"does not belong to any of this network's subnets" in bad.stderr
    dy("run", "-d", "--name", "holder", "--network", "fixed", "--ip", fixed, "busybox", "sleep", "100")
    taken = dy("run", "--rm", "--network", "fixed", "--ip", fixed, "busybox", "true", check=False)
    assert taken.returncode == 125 and f"Address already in use: {fixed}".encode() in taken.stderr
    auto = dy("network", "create", "autonet")
    assert auto.returncode == 0
    bad = dy("run", "--rm", "--network", "autonet", "--ip", "10.213.250.9", "busybox", "true", check=False)
    assert b"user configured subnets" in bad.stderr

    dy("network", "create", "--internal", "sealed")
    routes = dy.out("run", "--rm", "--network", "sealed", "busybox", "ip", "route")
    assert "default" not in routes
    doc = json.loads(dy.out("network", "inspect", "sealed"))[0]
    assert doc["Internal"] is True


def test_connect_and_disconnect_running_and_stopped(dy, busybox):
    dy("network", "create", "one")
    dy("network", "create", "two")
    dy("run", "-d", "--name", "aa", "--network", "one", "busybox", "sleep", "100")
    dy("run", "-d", "--name", "bb", "--network", "two", "busybox", "sleep", "100")
    assert resolve(dy, "bb", "aa") == ""
    dy("network", "connect", "--alias", "alpha", "two", "aa")
    assert "eth1" in dy.out("exec", "aa", "ip", "-o", "link")
    two_address = inspect(dy, "aa")["NetworkSettings"]["Networks"]["two"]["IPAddress"]
    assert two_address in resolve(dy, "bb", "alpha") and two_address in resolve(dy, "bb", "aa")
    assert dy.out("exec", "bb", "ping", "-c1", "-W2", "alpha").count("1 packets received") == 1
    again = dy("network", "connect", "two", "aa", check=False)
    assert again.returncode == 1 and b"endpoint with name aa already exists in network two" in again.stderr
    dy("network", "disconnect", "two", "aa")
    assert "eth1" not in dy.out("exec", "aa", "ip", "-o", "link")
    assert resolve(dy, "bb", "alpha") == ""
    assert set(inspect(dy, "aa")["NetworkSettings"]["Networks"]) == {"one"}
    not_there = dy("network", "disconnect", "two", "aa", check=False)
    assert b"is not connected to network two" in not_there.stderr
    # A stopped container: connect is recorded, and the next start joins both networks.
    dy("create", "--name", "cc", "--network", "one", "busybox", "sleep", "100")
    dy("network", "connect", "two", "cc")
    dy("start", "cc")
    assert set(inspect(dy, "cc")["NetworkSettings"]["Networks"]) == {"one", "two"}
    assert dy.out("exec", "cc", "ip", "-o", "link").count(": eth") == 2
    host = dy("network", "connect", "host", "cc", check=False)
    assert b"host network" in host.stderr


def test_networks_are_isolated_from_each_other(dy, busybox):
    dy("network", "create", "red")
    dy("network", "create", "blue")
    dy("run", "-d", "--name", "rr", "--network", "red", "busybox", "sleep", "100")
    dy("run", "-d", "--name", "bb", "--network", "blue", "busybox", "sleep", "100")
    red_address = inspect(dy, "rr")["NetworkSettings"]["Networks"]["red"]["IPAddress"]
    blue_gateway = inspect(dy, "bb")["NetworkSettings"]["Networks"]["blue"]["Gateway"]
    assert dy.out("exec", "bb", "ping", "-c1", "-W2", blue_gateway).count("1 packets received") == 1
    blocked = dy("exec", "bb", "ping", "-c1", "-W1", red_address, check=False)
    assert blocked.returncode != 0


def test_user_network_bridge_goes_with_the_network(dy, busybox):
    dy("network", "create", "gone")
    bridge = bridge_of(dy, "gone")
    dy("run", "--rm", "--network", "gone", "busybox", "true")
    assert bridge in links(bridge)
    dy("network", "rm", "gone")
    assert links(bridge) == []
    # With no monitor at all, rm still works (nothing is up).
    dy("network", "create", "offline")
    assert dy.out("network", "rm", "offline") == "offline\n"
