"""Everything networking makes is counted before and after: veths, namespaces and their pins, nft tables,
iptables rules, reserved ports, DNS sockets; also when the monitor is killed."""

from __future__ import annotations

import os
import signal
import socket

from tests.network.helpers import (
    bridge_of,
    forward_rules,
    free_port,
    http_ready,
    inspect,
    links,
    monitor_pid,
    nft_tables,
    pin_mounts,
    pins,
    port_map,
    stop_monitor,
    wait_for,
)


def sockets_of(pid: int) -> int:
    fds = os.listdir(f"/proc/{pid}/fd")
    return sum(1 for fd in fds if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"))


def test_containers_and_networks_leave_nothing(dy, busybox):
    dy("network", "create", "tidy")
    default_bridge, user_bridge = bridge_of(dy), bridge_of(dy, "tidy")
    port = free_port()
    web_id = dy.out("run", "-d", "--name", "w1", "-p", f"{port}:80", "busybox", "sleep", "100").strip()
    ids = [dy.out("run", "-d", "--network", "tidy", "busybox", "sleep", "100").strip() for _ in range(3)]
    monitor = monitor_pid(dy)
    with_containers = sockets_of(monitor)
    assert len(pins(dy)) == 4 and len(pin_mounts(dy)) == 4
    assert len([n for n in links("vdy")]) >= 4
    assert len(nft_tables(default_bridge)) == 1 and len(nft_tables(user_bridge)) == 1
    assert len(forward_rules(default_bridge)) == 3 and len(forward_rules(user_bridge)) == 3
    assert str(port) in port_map(default_bridge)
    dy("rm", "-f", "w1", *ids)
    # Namespaces, their pins, the port and DNS sockets go at once; the kernel destroys the veths with the
    # namespaces, asynchronously.
    assert pins(dy) == [] and pin_mounts(dy) == []
    assert str(port) not in port_map(default_bridge)
    assert sockets_of(monitor) <= with_containers - 4  # the port reservation and three DNS listeners
    short_ids = [i[:6] for i in ids + [web_id]]
    wait_for(lambda: not any(n.startswith("vdy" + s) for n in links("vdy") for s in short_ids), timeout=30)
    # The user network's bridge and rules go with it; the default bridge with the monitor.
    dy("network", "rm", "tidy")
    assert links(user_bridge) == [] and nft_tables(user_bridge) == [] and forward_rules(user_bridge) == []
    assert links(default_bridge) == [default_bridge]
    stop_monitor(dy)
    assert links(default_bridge) == [] and nft_tables(default_bridge) == []
    assert forward_rules(default_bridge) == []


def test_killed_monitor_leaves_nothing_behind(dy, busybox):
    dy("network", "create", "crashnet")
    port = free_port()
    cid = dy.out("run", "-d", "--network", "crashnet", "-p", f"{port}:80", "busybox", "sh", "-c",
                 "mkdir /www; echo up > /www/index.html; exec httpd -f -p 80 -h /www").strip()
    assert wait_for(lambda: http_ready("127.0.0.1", port, "/index.html"))
    bridges = [bridge_of(dy), bridge_of(dy, "crashnet")]
    pid = inspect(dy, cid)["State"]["Pid"]
    os.kill(monitor_pid(dy), signal.SIGKILL)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
             open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", timeout=10)
    assert pins(dy) == [cid]  # the dead monitor could not clean up...
    # ...the next one does, as it starts: namespaces, bridges, tables, rules; and it still works.
    dy("run", "--rm", "busybox", "true")
    assert pins(dy) == [] and pin_mounts(dy) == []
    assert links(bridges[1]) == [] and nft_tables(bridges[1]) == [] and forward_rules(bridges[1]) == []
    wait_for(lambda: not any(n.startswith("vdy" + cid[:6]) for n in links("vdy")), timeout=30)
    with socket.socket() as s:  # the port is free again
        s.bind(("0.0.0.0", port))
    dy("rm", cid)
    assert dy.out("run", "--rm", "--network", "crashnet", "busybox", "sh", "-c", "ip -4 -o addr show eth0")
    stop_monitor(dy)
    for bridge in bridges:
        assert links(bridge) == [] and nft_tables(bridge) == [] and forward_rules(bridge) == []


def test_rapid_restarts_keep_no_stale_state(dy, busybox):
    """A container that restarts quickly gets a new namespace each time, never meeting its old veth."""
    dy("run", "-d", "--name", "flap", "--restart", "always", "busybox", "sh", "-c", "sleep 0.1")
    wait_for(lambda: int(dy.out("inspect", "-f", "{{.RestartCount}}", "flap")) >= 5, timeout=30)
    assert dy.out("inspect", "-f", "{{.State.Error}}", "flap").strip() == ""
    dy("rm", "-f", "flap")
    assert pins(dy) == []
