"""Container networking: bridge networks, veth endpoints, IPAM, NAT and published ports, embedded DNS.

Docker's model, driven from the monitor (the one process per root that starts every container, see
engine/monitor): `engine/networks.py` is the service the rest of the engine sees; everything here is its
kernel side, owned by one NetworkRuntime that lives in the monitor.

- A bridge network is a Linux bridge (`dockyard0` for the default root's `bridge` network, `dy<hash>` for
  other roots', `dy-<id>` for user networks) with the gateway address, an nftables table of its own and three
  ACCEPT rules in iptables' FORWARD chain. It comes up with its first container and goes down with the network
  or the monitor: no rule is added per container, and publishing a port adds an element to a map.
- A container gets a network namespace the monitor makes and pins at <run root>/netns/<id>; the runtime joins
  it by path. Each endpoint is a veth pair made by one netlink request, its peer already in the namespace.
  Attach costs about 1.5 ms (2 with published ports), detach 0.2 ms: unpinning the namespace lets the kernel
  destroy the veths.
- Published ports are DNAT (kernel speed, no proxy process), 127.0.0.1 included (route_localnet on the bridge
  with a guard), with each host port held by a bound socket so clashes are errors that name the port.
- On user networks, names and aliases resolve through a DNS server at 127.0.0.11 inside each container: a
  socket the monitor opens in the container's namespace and serves from its event loop, relaying other names
  to the host's resolvers.

    netlink.py   rtnetlink requests (links, addresses, routes), no `ip` processes
    netns.py     pinned namespaces: create, enter, remove
    ipam.py      subnets that clash with nothing, round-robin addresses
    bridge.py    a network up and down (bridge, sysctls, packet filter), the machine-wide subnet lock
    firewall.py  the nftables table and the iptables FORWARD accepts of a network, port map elements
    nft.py       libnftables in-process (the `nft` binary as a fallback)
    ports.py     published ports: wanted, reserved, shown
    sandbox.py   a container's namespace and its veth endpoints
    dns.py       the embedded DNS server
    etc_files.py /etc/hosts and /etc/resolv.conf
    store.py     network records (SQLite)
    runtime.py   the monitor-side state tying these together, and cleanup after a crash
"""
