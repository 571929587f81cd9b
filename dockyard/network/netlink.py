"""A small rtnetlink client: the few link, address and route requests a bridge network needs.

Why not the `ip` binary: each `ip` process costs milliseconds, and a container start needs half a dozen
requests; over one netlink socket they cost tens of microseconds each. Why not pyroute2: it is a large
dependency (and import) for the eight message types used here.

A socket talks to the network namespace it was created in, so the monitor opens one socket in the host's
namespace and one inside each new container namespace (see netns.py).
"""

from __future__ import annotations

import errno
import os
import socket
import struct

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_NEWROUTE, RTM_DELROUTE = 20, 24, 25
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER, IFLA_LINKINFO = 1, 3, 4, 10, 18
IFLA_AF_SPEC, IFLA_NET_NS_FD = 26, 28
IFLA_INET6_ADDR_GEN_MODE, IN6_ADDR_GEN_MODE_NONE = 8, 1
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER, IFLA_BR_MCAST_SNOOPING = 1, 2, 1, 23
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_DST, RTA_OIF, RTA_GATEWAY = 1, 4, 5
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RT_SCOPE_LINK, RTN_UNICAST = 254, 3, 0, 253, 1
IFF_UP = 0x1
NLA_F_NESTED = 0x8000

_HEADER = struct.Struct("=IHHII")      # nlmsghdr: len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")     # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")      # ifaddrmsg: family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")   # rtmsg: family, dst/src len, tos, table, protocol, scope, type, flags


def attr(kind: int, payload: bytes) -> bytes:
    """One netlink attribute, padded to 4 bytes."""
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def name_attr(name: str) -> bytes:
    return attr(IFLA_IFNAME, name.encode() + b"\0")


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


def mac_bytes(mac: str) -> bytes:
    return bytes(int(part, 16) for part in mac.split(":"))


class NetlinkError(OSError):
    pass


class Netlink:
    """One NETLINK_ROUTE socket; every request waits for the kernel's answer (ack or error)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Netlink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes, what: str) -> list[bytes]:
        """Send one request; return the payloads of the answer messages (empty for a plain ack)."""
        self.seq += 1
        seq = self.seq
        flags |= NLM_F_REQUEST | NLM_F_ACK
        message = _HEADER.pack(_HEADER.size + len(body), kind, flags, seq, 0) + body
        self.sock.send(message)
        answers: list[bytes] = []
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset + _HEADER.size <= len(data):
                length, mtype, _, mseq, _ = _HEADER.unpack_from(data, offset)
                payload = data[offset + _HEADER.size: offset + length]
                offset += (length + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, f"{what}: {os.strerror(code)}")
                    return answers
                if mtype == NLMSG_DONE:
                    return answers
                answers.append(payload)

    # --- links ----------------------------------------------------------------------------------------------

    def link_index(self, name: str) -> int | None:
        try:
            answers = self.request(RTM_GETLINK, 0, ifinfo() + name_attr(name), f"find link {name}")
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return None
            raise
        return _IFINFO.unpack_from(answers[0])[2] if answers else None

    def add_bridge(self, name: str, mac: str, mtu: int = 1500) -> int:
        """A bridge, up, without IPv6 (see up_without_ipv6) nor multicast snooping (with it on, the bridge
        itself joins the all-snoopers groups and sends IGMP/MLD reports into every container)."""
        body = (ifinfo() + name_attr(name) + attr(IFLA_ADDRESS, mac_bytes(mac))
                + attr(IFLA_MTU, struct.pack("=I", mtu))
                + nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"bridge"),
                         nested(IFLA_INFO_DATA, attr(IFLA_BR_MCAST_SNOOPING, b"\0"))))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create bridge {name}")
        index = self.link_index(name)
        assert index is not None
        self.up_without_ipv6(name)
        return index

    def add_veth(self, host_name: str, master: int, peer_name: str, peer_netns_fd: int, peer_mac: str,
                 mtu: int = 1500) -> None:
        """A veth pair whose host end is on the bridge `master` (down: see up_without_ipv6) and whose peer is
        made in a namespace (down too: the kernel configures it before the pair is joined, so IFF_UP there
        fails with ENOTCONN; bring it up from inside its namespace)."""
        peer = (ifinfo() + name_attr(peer_name) + attr(IFLA_ADDRESS, mac_bytes(peer_mac))
                + attr(IFLA_MTU, struct.pack("=I", mtu))
                + attr(IFLA_NET_NS_FD, struct.pack("=I", peer_netns_fd)))
        body = (ifinfo() + name_attr(host_name) + attr(IFLA_MTU, struct.pack("=I", mtu))
                + attr(IFLA_MASTER, struct.pack("=I", master))
                + nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"veth"),
                         nested(IFLA_INFO_DATA, nested(VETH_INFO_PEER, peer))))
        self.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body, f"create veth {host_name}")

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, 0, ifinfo(index, IFF_UP, IFF_UP), f"set link {index} up")

    def up_without_ipv6(self, name: str) -> None:
        """Bring a link up with no IPv6 address generation: bridges and host veth ends need no link-local
        address, and without one they send nothing (no DAD, router or multicast listener messages) into the
        containers. The mode can only be set on an existing link, and must be before it is up."""
        mode = nested(IFLA_AF_SPEC, nested(socket.AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE,
                                                                  bytes([IN6_ADDR_GEN_MODE_NONE]))))
        try:
            self.request(RTM_NEWLINK, 0, ifinfo() + name_attr(name) + mode, f"no IPv6 on {name}")
        except NetlinkError as e:
            if e.errno != errno.EAFNOSUPPORT:  # a kernel without IPv6
                raise
        self.request(RTM_NEWLINK, 0, ifinfo(0, IFF_UP, IFF_UP) + name_attr(name), f"set {name} up")

    def delete_link(self, name: str) -> bool:
        """Delete a link by name; False when there was none."""
        try:
            self.request(RTM_DELLINK, 0, ifinfo() + name_attr(name), f"delete link {name}")
        except NetlinkError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                return False
            raise
        return True

    # --- addresses and routes -------------------------------------------------------------------------------

    def add_address(self, index: int, address: str, prefix_len: int, broadcast: str | None = None) -> None:
        packed = socket.inet_aton(address)
        body = _IFADDR.pack(socket.AF_INET, prefix_len, 0, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        if broadcast:
            body += attr(IFA_BROADCAST, socket.inet_aton(broadcast))
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body, f"add address {address}/{prefix_len}")

    def add_default_route(self, gateway: str, index: int) -> None:
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE,
                           RTN_UNICAST, 0)
        body += attr(RTA_GATEWAY, socket.inet_aton(gateway)) + attr(RTA_OIF, struct.pack("=I", index))
        self.request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, body, f"add default route via {gateway}")
