"""The default bridge network and published ports, end to end through the CLI."""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.network.helpers import (
    bridge_of,
    free_port,
    http_get,
    http_ready,
    inspect,
    links,
    pins,
    port_map,
    wait_for,
)

UDP_ECHO = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('0.0.0.0', 53))\n"
            "for _ in range(100):\n    s.sendto(*s.recvfrom(100))\n")
WEB = "mkdir -p /www && echo hello-{tag} > /www/index.html && exec httpd -f -p {bind} -h /www"


def web(dy, name: str, *flags: str, bind: str = "80") -> str:
    return dy.out("run", "-d", "--name", name, *flags, "busybox", "sh", "-c",
                  WEB.format(tag=name, bind=bind)).strip()


def nc_get(dy, network_flags: list[str], host: str, port: int) -> str:
    """An HTTP GET from inside a fresh container (busybox nc)."""
    script = f"printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {port}"
    return dy("run", "--rm", *network_flags, "busybox", "sh", "-c", script, check=False).stdout.decode()


def test_default_bridge_address_route_hosts(dy, busybox):
    bridge = json.loads(dy.out("network", "inspect", "bridge"))[0]
    subnet = ipaddress.ip_network(bridge["IPAM"]["Config"][0]["Subnet"])
    gateway = bridge["IPAM"]["Config"][0]["Gateway"]
    out = dy.out("run", "--rm", "--hostname", "box1", "busybox", "sh", "-c",
                 "ip -4 -o addr show eth0; ip route; cat /etc/hosts; ping -c1 -W2 " + gateway)
    address = out.split("inet ")[1].split("/")[0]
    assert ipaddress.ip_address(address) in subnet
    assert f"default via {gateway} dev eth0" in out
    assert f"{address}\tbox1" in out
    assert "1 packets received" in out
    # Nothing clashes with the host's routes: the subnet is routed through our bridge only.
    routes = [line for line in open("/proc/net/route").read().splitlines()[1:]]
    assert sum(1 for r in routes if r.split()[0] == bridge_of(dy)) >= 1


def test_none_host_and_container_modes(dy, busybox):
    assert "eth0" not in dy.out("run", "--rm", "--network", "none", "busybox", "ip", "-o", "link")
    host_links = dy.out("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert "lo:" in host_links and host_links.count("\n") > 2
    dy("run", "-d", "--name", "owner", "busybox", "sleep", "100")
    mine = dy.out("exec", "owner", "ip", "-4", "-o", "addr", "show", "eth0").split()[3]
    shared = dy.out("run", "--rm", "--network", "container:owner", "busybox", "ip", "-4", "-o", "addr",
                    "show", "eth0").split()[3]
    assert mine == shared
    hosts = dy.out("run", "--rm", "--network", "container:owner", "busybox", "cat", "/etc/hosts")
    assert mine.split("/")[0] in hosts  # the other container's /etc/hosts, as in Docker
    bad = dy("run", "--rm", "--network", "container:owner", "-p", "80", "busybox", "true", check=False)
    assert bad.returncode == 125 and b"conflicting options" in bad.stderr


def test_published_port_from_host_and_other_containers(dy, busybox):
    port = free_port()
    web(dy, "web", "-p", f"{port}:80")
    body = wait_for(lambda: http_ready("127.0.0.1", port, "/index.html"))
    assert b"hello-web" in body
    address = inspect(dy, "web")["NetworkSettings"]["IPAddress"]
    gateway = inspect(dy, "web")["NetworkSettings"]["Gateway"]
    assert b"hello-web" in http_get(gateway, port, "/index.html")      # a host address other than 127.0.0.1
    assert "hello-web" in nc_get(dy, [], gateway, port)                 # another container, through the port
    assert "hello-web" in nc_get(dy, [], address, 80)                   # and directly
    assert dy.out("port", "web") == f"80/tcp -> 0.0.0.0:{port}\n"
    assert dy.out("port", "web", "80") == f"0.0.0.0:{port}\n"
    assert dy.out("ps", "--format", "{{.Ports}}") == f"0.0.0.0:{port}->80/tcp\n"
    ports = inspect(dy, "web")["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    dy("rm", "-f", "web")
    assert str(port) not in port_map(bridge_of(dy))
    with socket.socket() as s:  # the reservation went with the container
        s.bind(("0.0.0.0", port))


def test_server_bound_to_loopback_is_not_published(dy, busybox):
    """The seed's warning: a published port reaches the container's address, never its 127.0.0.1."""
    inside, outside = free_port(), free_port()
    web(dy, "lo-only", "-p", f"{inside}:80", bind="127.0.0.1:80")
    web(dy, "all", "-p", f"{outside}:80", bind="0.0.0.0:80")
    assert b"hello-all" in wait_for(lambda: http_ready("127.0.0.1", outside, "/index.html"))
    inside_get = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 80"
    assert "hello-lo-only" in dy.out("exec", "lo-only", "sh", "-c", inside_get)  # it does serve, inside
    try:
        reply = http_get("127.0.0.1", inside, "/index.html", timeout=2)
    except OSError:
        reply = b""
    assert b"hello" not in reply


def test_ephemeral_ranges_publish_all_udp_and_host_ip(dy, busybox):
    low = free_port()
    dy("run", "-d", "--name", "pp", "-p", "80", "-p", f"{low}-{low + 20}:81",
       "-p", f"127.0.0.1:{low + 30}:82", "-p", f"{low + 40}:53/udp", "--expose", "90", "-P", "busybox",
       "sh", "-c", "mkdir /www; echo p > /www/index.html; httpd -p 80 -h /www; httpd -p 90 -h /www; "
       "exec sleep 1000")
    ports = inspect(dy, "pp")["NetworkSettings"]["Ports"]
    ephemeral = int(ports["80/tcp"][0]["HostPort"])
    assert ephemeral > 0 and low <= int(ports["81/tcp"][0]["HostPort"]) <= low + 20
    assert ports["82/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": str(low + 30)}]
    assert ports["53/udp"] == [{"HostIp": "0.0.0.0", "HostPort": str(low + 40)}]
    published_all = int(ports["90/tcp"][0]["HostPort"])  # -P: the --expose'd port gets a free one
    assert b"p" in wait_for(lambda: http_ready("127.0.0.1", ephemeral, "/index.html"))
    assert b"p" in wait_for(lambda: http_ready("127.0.0.1", published_all, "/index.html"))
    # busybox has no UDP server: an echo server runs in the container's network namespace instead.
    echo = subprocess.Popen(["nsenter", f"--net={inspect(dy, 'pp')['NetworkSettings']['SandboxKey']}",
                             sys.executable, "-c", UDP_ECHO])
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(0.5)

            def echoed() -> bool:
                u.sendto(b"ping", ("127.0.0.1", low + 40))
                try:
                    return u.recvfrom(100)[0] == b"ping"
                except OSError:
                    return False
            assert wait_for(echoed)
    finally:
        echo.kill()
        echo.wait()
    lines = dy.out("port", "pp").splitlines()
    assert f"82/tcp -> 127.0.0.1:{low + 30}" in lines and f"53/udp -> 0.0.0.0:{low + 40}" in lines


def test_port_in_use_is_a_clear_error_and_nothing_is_left(dy, busybox):
    port = free_port()
    holder = socket.socket()
    holder.bind(("0.0.0.0", port))
    holder.listen()
    try:
        before_links = links("vdy")
        result = dy("run", "-d", "--name", "clash", "-p", f"{port}:80", "busybox", "sleep", "100",
                    check=False)
        assert result.returncode == 125
        assert f"0.0.0.0:{port}".encode() in result.stderr and b"already allocated" in result.stderr
        state = inspect(dy, "clash")["State"]
        assert not state["Running"] and state["Status"] == "created"
        assert pins(dy) == [] and links("vdy") == before_links
        # The same port twice: the second container fails, the first keeps it.
        holder.close()
        dy("start", "clash")
        second = dy("run", "-d", "--name", "clash2", "-p", f"{port}:80", "busybox", "sleep", "100",
                    check=False)
        assert second.returncode == 125 and f"Bind for 0.0.0.0:{port} failed".encode() in second.stderr
        assert inspect(dy, "clash")["State"]["Running"]
    finally:
        holder.close()


def test_dns_and_add_host_flags(dy, busybox):
    out = dy.out("run", "--rm", "--dns", "192.0.2.53", "--add-host", "db:192.0.2.10",
                 "--add-host", "gw:host-gateway", "busybox", "sh", "-c", "cat /etc/resolv.conf /etc/hosts")
    gateway = json.loads(dy.out("network", "inspect", "bridge"))[0]["IPAM"]["Config"][0]["Gateway"]
    assert "nameserver 192.0.2.53" in out and "10.255.255.53" not in out
    assert "192.0.2.10\tdb" in out and f"{gateway}\tgw" in out
    bad = dy("run", "--rm", "--ip", "10.1.2.3", "busybox", "true", check=False)
    assert bad.returncode == 125 and b"user defined networks only" in bad.stderr
    bad = dy("run", "--rm", "--network-alias", "x", "busybox", "true", check=False)
    assert bad.returncode == 125 and b"network-scoped alias" in bad.stderr
    bad = dy("run", "--rm", "--network", "nosuchnet", "busybox", "true", check=False)
    assert bad.returncode == 125 and b"network nosuchnet not found" in bad.stderr


def test_interface_sysctls_see_the_endpoint(dy, busybox):
    """net.* sysctls may name eth0: with them the endpoint is made before the init writes them (otherwise it
    is made while the init sets up, see supervise.launch)."""
    out = dy.out("run", "--rm", "--sysctl", "net.ipv4.conf.eth0.forwarding=1", "busybox",
                 "cat", "/proc/sys/net/ipv4/conf/eth0/forwarding")
    assert out.strip() == "1"

def test_restart_gets_a_fresh_namespace(dy, busybox):
    port = free_port()
    web(dy, "rs", "-p", f"{port}:80")
    assert wait_for(lambda: http_ready("127.0.0.1", port, "/index.html"))
    first = inspect(dy, "rs")["NetworkSettings"]["SandboxKey"]
    dy("restart", "-t", "1", "rs")
    assert b"hello-rs" in wait_for(lambda: http_ready("127.0.0.1", port, "/index.html"))
    assert inspect(dy, "rs")["NetworkSettings"]["SandboxKey"] == first  # pinned at the same path again
    dy("stop", "-t", "1", "rs")
    stopped = inspect(dy, "rs")["NetworkSettings"]
    assert stopped["IPAddress"] == "" and stopped["Ports"] == {} and "bridge" in stopped["Networks"]
    assert pins(dy) == []


@pytest.mark.slow
def test_first_connection_never_waits_for_a_retransmit(dy, busybox):
    """A published port answers as soon as the server listens, even on a busy machine: the container's
    link must be able to carry the first ARP exchange (a lost one costs a one-second retransmit)."""
    port = free_port()
    # Own process groups, killed whole at the end: killing `timeout` alone would orphan its busy child.
    hogs = [subprocess.Popen(["timeout", "60", "sh", "-c", "while :; do :; done"], start_new_session=True)
            for _ in range(2)]
    try:
        for _ in range(20):
            started = time.monotonic()
            # Polled while `run` works, as a client would (and the S2 benchmark does): the first attempts
            # land as soon as the port is published, before the server runs.
            run = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(dy.root), "run", "-d",
                                    "--name", "quick", "-p", f"{port}:80", "busybox", "httpd", "-f", "-p",
                                    "80"], stdout=subprocess.DEVNULL)
            wait_for(lambda: http_ready("127.0.0.1", port), timeout=10, interval=0.005)
            took = time.monotonic() - started
            assert run.wait() == 0
            assert took < 0.9
            dy("rm", "-f", "quick")
    finally:
        for hog in hogs:
            os.killpg(hog.pid, signal.SIGKILL)
            hog.wait()
