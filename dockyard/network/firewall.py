"""The packet filter state of one bridge network: set up once when the network comes up, not per container.

Two parts, for two reasons:
- An nftables table of our own, `ip dockyard_<bridge>`: NAT (masquerade out of the subnet, DNAT of published
  ports, hairpin and 127.0.0.1 masquerade), isolation from other dockyard bridges, and the guard that
  route_localnet needs. Published ports are elements of its maps, so publishing a port is one `add element`
  (about 0.1 ms) instead of a rule per port: no rule churn per container.
- ACCEPT rules in iptables' filter FORWARD chain. An accept in our own table cannot override a DROP policy
  that Docker (or anyone) set on that chain (every base chain at a hook must accept), so, like Docker and
  podman, we add ours there, marked with a comment naming the bridge so they can be found and removed.

Why DNAT rather than a userland proxy: the kernel forwards at full speed with no process or socket per
port; 127.0.0.1 works with route_localnet on the bridge plus a masquerade, and the input-chain guard drops
what route_localnet would otherwise let a container reach (packets to the host's 127.0.0.0/8: the
CVE-2020-8558 lesson of Kubernetes).
"""

from __future__ import annotations

import subprocess

from dockyard.network.nft import Nft

PROTOCOLS = ("tcp", "udp")


def table_name(bridge: str) -> str:
    return "dockyard_" + bridge.replace("-", "_").replace(".", "_")


def ruleset(bridge: str, subnet: str, internal: bool) -> str:
    """The nft commands that (re)create the network's table, empty maps included."""
    table = table_name(bridge)
    maps = []
    port_rules = []
    for proto in PROTOCOLS:
        maps.append(f"map {proto}_any {{ type inet_service : ipv4_addr . inet_service; }}")
        maps.append(f"map {proto}_ip {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}")
        port_rules.append(f"dnat ip to ip daddr . {proto} dport map @{proto}_ip")
        port_rules.append(f"dnat ip to {proto} dport map @{proto}_any")
    masquerade = [] if internal else [f'ip saddr {subnet} oifname != "{bridge}" masquerade']
    masquerade += [f'oifname "{bridge}" ip saddr 127.0.0.0/8 masquerade',  # 127.0.0.1:port -> container
                   f'oifname "{bridge}" ip saddr {subnet} ct status dnat masquerade']  # hairpin
    if internal:
        forward = [f'iifname "{bridge}" oifname != "{bridge}" drop',
                   f'oifname "{bridge}" iifname != "{bridge}" drop']
    else:
        # Docker's isolation between bridge networks; a published port stays reachable from any of them.
        forward = [f'oifname "{bridge}" iifname != "{bridge}" iifname "{prefix}*" ct status & dnat == 0 drop'
                   for prefix in ("dy", "dockyard")]
    lines = [f"table ip {table} {{", *maps,
             "chain ports {", *port_rules, "}",
             "chain prerouting {", "type nat hook prerouting priority dstnat; policy accept;",
             "fib daddr type local jump ports", "}",
             "chain output {", "type nat hook output priority -100; policy accept;",
             "fib daddr type local jump ports", "}",
             "chain postrouting {", "type nat hook postrouting priority srcnat; policy accept;",
             *masquerade, "}",
             "chain forward {", "type filter hook forward priority filter; policy accept;", *forward, "}",
             "chain input {", "type filter hook input priority filter; policy accept;",
             f'iifname "{bridge}" ip daddr 127.0.0.0/8 ct state new drop', "}",
             "}"]
    # Delete-then-create in one transaction: whatever a dead monitor left is replaced atomically.
    return f"table ip {table}\ndelete table ip {table}\n" + "\n".join(lines) + "\n"


def port_key(proto: str, host_ip: str, host_port: int) -> tuple[str, str]:
    """(map name, key) of a published port."""
    if host_ip in ("", "0.0.0.0"):
        return f"{proto}_any", str(host_port)
    return f"{proto}_ip", f"{host_ip} . {host_port}"


def add_ports(nft: Nft, bridge: str, mappings: list[tuple[str, str, int, str, int]]) -> None:
    """Publish (proto, host ip, host port, container ip, container port) mappings, in one transaction."""
    if not mappings:
        return
    table = table_name(bridge)
    commands = []
    for proto, host_ip, host_port, ip, port in mappings:
        name, key = port_key(proto, host_ip, host_port)
        commands.append(f"add element ip {table} {name} {{ {key} : {ip} . {port} }}")
    nft.run("\n".join(commands) + "\n")


def remove_ports(nft: Nft, bridge: str, mappings: list[tuple[str, str, int, str, int]]) -> None:
    table = table_name(bridge)
    for proto, host_ip, host_port, _, _ in mappings:
        name, key = port_key(proto, host_ip, host_port)
        nft.try_run(f"delete element ip {table} {name} {{ {key} }}\n")


def set_up(nft: Nft, bridge: str, subnet: str, internal: bool) -> None:
    nft.run(ruleset(bridge, subnet, internal))
    _iptables_restore(_forward_rules(bridge, internal, "-I"))


def tear_down(nft: Nft, bridge: str) -> None:
    table = table_name(bridge)
    nft.try_run(f"table ip {table}\ndelete table ip {table}\n")
    remove_forward_rules(bridge)


def table_exists(nft: Nft, bridge: str) -> bool:
    return nft.try_run(f"list table ip {table_name(bridge)}\n")


# --- iptables: the filter FORWARD accepts -------------------------------------------------------------------

def _comment(bridge: str) -> str:
    return f"dockyard {bridge}"


def _forward_rules(bridge: str, internal: bool, op: str) -> list[str]:
    mark = f'-m comment --comment "{_comment(bridge)}"'
    if internal:
        return [f"{op} FORWARD -i {bridge} -o {bridge} {mark} -j ACCEPT"]
    return [f"{op} FORWARD -i {bridge} {mark} -j ACCEPT",
            f"{op} FORWARD -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED {mark} -j ACCEPT",
            f"{op} FORWARD -o {bridge} -m conntrack --ctstate DNAT {mark} -j ACCEPT"]


def _iptables_restore(rules: list[str]) -> None:
    if not rules:
        return
    text = "*filter\n" + "\n".join(rules) + "\nCOMMIT\n"
    try:
        result = subprocess.run(["iptables-restore", "-w", "-n"], input=text.encode(), capture_output=True)
    except FileNotFoundError:
        return  # no iptables: nothing can have a DROP policy there either
    if result.returncode != 0:
        from dockyard.errors import HostError

        raise HostError(f"iptables-restore: {result.stderr.decode(errors='replace').strip()}")


def remove_forward_rules(bridge: str) -> None:
    """Delete every FORWARD rule carrying this bridge's comment (whatever set of them exists)."""
    try:
        listing = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return
    marker = f'--comment "{_comment(bridge)}"'
    rules = ["-D" + line[2:] for line in listing.splitlines() if line.startswith("-A ") and marker in line]
    if rules:
        _iptables_restore(rules)


def enable_forwarding(bridge: str) -> None:
    """IPv4 forwarding (Docker turns it on too), and 127.0.0.1 DNAT to the bridge (route_localnet)."""
    for path in ("/proc/sys/net/ipv4/ip_forward", f"/proc/sys/net/ipv4/conf/{bridge}/route_localnet"):
        with open(path, "r+") as f:
            if f.read().strip() != "1":
                f.seek(0)
                f.write("1")
