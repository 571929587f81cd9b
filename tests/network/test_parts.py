"""The network package's parts on their own: DNS messages, address allocation, port plans, /etc files, the
nft ruleset (checked by nft itself), netlink and namespaces (in a namespace of the test's own)."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from ipaddress import IPv4Address, IPv4Network

import pytest

from dockyard.errors import Conflict, InvalidArgument
from dockyard.network import dns, etc_files, firewall, ipam, ports


def query(name: str, qtype: int = dns.TYPE_A, qid: int = 0x1234) -> bytes:
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + dns.encode_name(name) + struct.pack("!HH", qtype, 1)


def test_dns_query_parse_and_answers():
    q = dns.parse_query(query("Web.MyNet."))
    assert (q.id, q.name, q.qtype) == (0x1234, "web.mynet", dns.TYPE_A)
    answer = dns.response(q, addresses=["10.1.2.3", "10.1.2.4"])
    qid, flags, qd, an, _, _ = struct.unpack_from("!HHHHHH", answer)
    assert qid == 0x1234 and flags & 0x8000 and flags & 0x0100 and (qd, an) == (1, 2)
    assert answer.endswith(socket.inet_aton("10.1.2.4"))
    nx = dns.response(q, rcode=dns.RCODE_NXDOMAIN)
    assert struct.unpack_from("!H", nx, 2)[0] & 0xF == dns.RCODE_NXDOMAIN
    ptr = dns.response(dns.parse_query(query("3.2.1.10.in-addr.arpa", dns.TYPE_PTR)), ptr="db.app")
    assert ptr.endswith(dns.encode_name("db.app"))
    for bad in (b"", b"\x00" * 11, query("a")[:-2], struct.pack("!HHHHHH", 1, 0x8000, 1, 0, 0, 0)):
        with pytest.raises(dns.Malformed):
            dns.parse_query(bad)


def test_allocator_round_robin_static_and_exhaustion():
    alloc = ipam.Allocator(IPv4Network("10.9.0.0/29"), IPv4Address("10.9.0.1"))
    first = [alloc.allocate() for _ in range(5)]
    assert [str(a) for a in first] == ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"]
    with pytest.raises(Conflict):
        alloc.allocate()
    alloc.release(IPv4Address("10.9.0.3"))
    alloc.release(IPv4Address("10.9.0.5"))
    assert str(alloc.allocate()) == "10.9.0.3"  # round robin: the next free after the last handed out
    with pytest.raises(Conflict):
        alloc.allocate(IPv4Address("10.9.0.2"))
    with pytest.raises(InvalidArgument):
        alloc.allocate(IPv4Address("10.8.0.2"))
    assert str(alloc.allocate(IPv4Address("10.9.0.5"))) == "10.9.0.5"


def test_subnet_choice_avoids_taken_ones():
    taken = [IPv4Network("10.213.0.0/24"), IPv4Network("10.213.1.0/25"), IPv4Network("10.0.0.0/16")]
    assert ipam.pick_subnet(taken) == IPv4Network("10.213.2.0/24")
    with pytest.raises(Conflict):
        ipam.pick_subnet([IPv4Network("10.0.0.0/8")])
    assert all(net.prefixlen for net, _ in ipam.host_routes())  # default routes are not "taken"


def test_port_plan():
    host = {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}], "53/udp": [{}]},
            "PublishAllPorts": True}
    config = {"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "443/tcp": {}}}
    assert sorted(ports.wanted(host, config)) == [("tcp", 80, "", "8080"), ("tcp", 443, "", ""),
                                                  ("udp", 53, "", "")]
    made = ports.reserve({"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}, {}, "x")
    try:
        assert made[0].host_port > 0 and made[0].host_ip == "127.0.0.1"
        taken = f"127.0.0.1:{made[0].host_port} failed: port is already allocated"
        with pytest.raises(Conflict, match=taken):
            ports.reserve({"PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1",
                                                        "HostPort": str(made[0].host_port)}]}}, {}, "x")
        view = ports.ports_view({"ExposedPorts": {"80/tcp": {}, "81/tcp": {}}}, made)
        assert view == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(made[0].host_port)}],
                        "81/tcp": None}
    finally:
        for b in made:
            b.release()


def test_hosts_and_resolv_conf():
    text = etc_files.hosts("box", "", "10.0.0.5", ["db:10.0.0.9", "gw:host-gateway"], "10.0.0.1")
    assert text.startswith("127.0.0.1\tlocalhost\n")
    assert text.endswith("10.0.0.9\tdb\n10.0.0.1\tgw\n10.0.0.5\tbox\n")
    with pytest.raises(InvalidArgument):
        etc_files.hosts("box", "", None, ["nocolon"], None)
    embedded = etc_files.resolv_conf([], [], [], embedded=True)
    assert "nameserver 127.0.0.11\n" in embedded and "options ndots:0" in embedded
    custom = etc_files.resolv_conf(["192.0.2.1"], ["example.test"], ["ndots:2"], embedded=False)
    assert custom.splitlines()[-3:] == ["nameserver 192.0.2.1", "search example.test", "options ndots:2"]


def test_ruleset_is_valid_nft():
    for internal in (False, True):
        text = firewall.ruleset("dy-check0", "10.213.99.0/24", internal)
        result = subprocess.run(["nft", "-c", "-f", "-"], input=text.encode(), capture_output=True)
        assert result.returncode == 0, result.stderr.decode()
    assert firewall.port_key("tcp", "", 8080) == ("tcp_any", "8080")
    assert firewall.port_key("udp", "127.0.0.1", 53) == ("udp_ip", "127.0.0.1 . 53")


def test_netlink_and_pinned_namespaces(tmp_path):
    """Bridge, veth into a pinned namespace, address and route: then the pin's removal frees it all."""
    from dockyard.network.netlink import Netlink
    from dockyard.network.netns import Namespaces

    bridge = "dyt" + os.urandom(4).hex()
    spaces = Namespaces(str(tmp_path / "netns"))
    with Netlink() as nl:
        index = nl.add_bridge(bridge, "02:42:0a:d5:fe:01")
        try:
            nl.add_address(index, "10.213.254.1", 24, "10.213.254.255")
            with spaces.create("c1") as fd, Netlink() as inner:
                inner.set_up(1)
                nl.add_veth(bridge + "v", index, "eth0", fd, "02:42:0a:d5:fe:02")
                eth0 = inner.link_index("eth0")
                inner.set_up(eth0)
                inner.add_address(eth0, "10.213.254.2", 24, "10.213.254.255")
                inner.add_default_route("10.213.254.1", eth0)
            assert nl.link_index(bridge + "v") is not None
            out = subprocess.run(["nsenter", f"--net={spaces.path('c1')}", "ip", "route"],
                                 capture_output=True, text=True).stdout
            assert "default via 10.213.254.1 dev eth0" in out
            assert spaces.pinned() == ["c1"]
            spaces.remove("c1")
            assert spaces.pinned() == []
            assert nl.delete_link(bridge + "v") in (True, False)  # gone now or soon (the kernel's own pace)
        finally:
            nl.delete_link(bridge)
        assert nl.link_index(bridge) is None
