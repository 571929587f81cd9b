"""The embedded DNS server of user-defined networks: containers find each other by name and alias.

Docker's design, in our monitor: every container on a user network gets a UDP socket bound to 127.0.0.11:53
*inside its own network namespace* (the monitor enters the namespace to create it, and the socket stays
there), and its resolv.conf says `nameserver 127.0.0.11`. All those sockets are served by the monitor's one
event loop, so the server costs a socket per container rather than a process. Docker binds a random port
and DNATs 53 to it with iptables inside every namespace; binding 53 directly saves that per-container rule
set (the container can still run its own resolver on any other address).

Names of endpoints on a network the asking container shares are answered here (A, and PTR for their
addresses); everything else is relayed, unchanged but for its id, to the host's resolvers (or the
container's --dns servers) from the host's namespace, which is why loopback resolvers such as
systemd-resolved's 127.0.0.53 work too. Containers only on --internal networks get no relay.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

DNS_ADDRESS = "127.0.0.11"
TYPE_A, TYPE_PTR, TYPE_AAAA = 1, 12, 28
CLASS_IN = 1
RCODE_SERVFAIL, RCODE_NXDOMAIN, RCODE_REFUSED = 2, 3, 5
TTL = 600
FORWARD_TIMEOUT = 4.0
MAX_PENDING = 4096
_HEADER = struct.Struct("!HHHHHH")


class Malformed(ValueError):
    pass


@dataclass
class Question:
    id: int
    flags: int
    name: str          # lower case, no trailing dot
    qtype: int
    qclass: int
    raw: bytes         # the question section as sent (echoed in answers)


def parse_query(data: bytes) -> Question:
    if len(data) < _HEADER.size:
        raise Malformed("short message")
    qid, flags, qdcount, _, _, _ = _HEADER.unpack_from(data)
    if flags & 0x8000 or qdcount != 1:
        raise Malformed("not a single-question query")
    labels = []
    offset = _HEADER.size
    while True:
        if offset >= len(data):
            raise Malformed("truncated name")
        length = data[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0 or offset + length > len(data):
            raise Malformed("bad label")
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(data):
        raise Malformed("truncated question")
    qtype, qclass = struct.unpack_from("!HH", data, offset)
    return Question(qid, flags, ".".join(labels).lower(), qtype, qclass, data[_HEADER.size:offset + 4])


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def response(q: Question, rcode: int = 0, addresses: list[str] = (), ptr: str | None = None) -> bytes:
    """An answer to q: A records for addresses, or one PTR record, or none with rcode."""
    records = []
    for address in addresses:
        records.append(b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, CLASS_IN, TTL, 4)
                       + socket.inet_aton(address))
    if ptr is not None:
        target = encode_name(ptr)
        records.append(b"\xc0\x0c" + struct.pack("!HHIH", TYPE_PTR, CLASS_IN, TTL, len(target)) + target)
    # QR, opcode copied, AA, RD copied, RA.
    flags = 0x8000 | (q.flags & 0x7800) | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode
    return _HEADER.pack(q.id, flags, 1, len(records), 0, 0) + q.raw + b"".join(records)


def reverse_name(address: str) -> str:
    return ".".join(reversed(address.split("."))) + ".in-addr.arpa"


class Resolver:
    """What the server asks the network runtime, for the container that sent the query."""

    def lookup(self, container_id: str, name: str) -> list[str] | None:
        """Addresses of a name on the container's networks (None: not ours)."""
        raise NotImplementedError

    def reverse(self, container_id: str, address: str) -> str | None:
        raise NotImplementedError

    def upstreams(self, container_id: str) -> list[str]:
        """Resolvers to relay other names to (empty: answer SERVFAIL)."""
        raise NotImplementedError


@dataclass
class _Pending:
    listener: socket.socket
    client: tuple[str, int]
    original_id: int
    deadline: float
    servers: tuple[str, ...]  # only their answers are relayed back (a spoofed reply needs their address)


class DnsServer:
    """Listeners (one per container namespace) and the relay socket, on the monitor's selector."""

    def __init__(self, selector, resolver: Resolver,
                 add_timer: Callable[[float, Callable[[], None]], object]) -> None:
        self.selector = selector
        self.resolver = resolver
        self.add_timer = add_timer
        self.listeners: dict[str, socket.socket] = {}
        self.upstream: socket.socket | None = None
        self.pending: dict[int, _Pending] = {}
        self.sweeping = False

    # --- listeners ------------------------------------------------------------------------------------------

    @staticmethod
    def open_listener() -> socket.socket:
        """Call inside the container's namespace (loopback up): the socket stays bound there."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        sock.bind((DNS_ADDRESS, 53))
        return sock

    def serve(self, container_id: str, sock: socket.socket) -> None:
        self.close(container_id)
        self.listeners[container_id] = sock
        import selectors

        self.selector.register(sock, selectors.EVENT_READ, lambda s, mask: self._query(container_id, s))

    def close(self, container_id: str) -> None:
        sock = self.listeners.pop(container_id, None)
        if sock is None:
            return
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()
        for qid in [k for k, p in self.pending.items() if p.listener is sock]:
            del self.pending[qid]

    def close_all(self) -> None:
        for container_id in list(self.listeners):
            self.close(container_id)
        if self.upstream is not None:
            try:
                self.selector.unregister(self.upstream)
            except (KeyError, ValueError):
                pass
            self.upstream.close()
            self.upstream = None

    # --- queries --------------------------------------------------------------------------------------------

    def _query(self, container_id: str, sock: socket.socket) -> None:
        for _ in range(64):  # drain what is there, a bounded amount per event
            try:
                data, client = sock.recvfrom(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                self._answer(container_id, sock, data, client)
            except Malformed:
                continue

    def _answer(self, container_id: str, sock: socket.socket, data: bytes, client) -> None:
        q = parse_query(data)
        if q.qclass == CLASS_IN and q.qtype in (TYPE_A, TYPE_AAAA) and q.name:
            addresses = self.resolver.lookup(container_id, q.name)
            if addresses is not None:
                # Known name: its IPv4 addresses; no IPv6 ones (an empty answer, not an error).
                _send(sock, response(q, addresses=addresses if q.qtype == TYPE_A else []), client)
                return
        if q.qclass == CLASS_IN and q.qtype == TYPE_PTR and q.name.endswith(".in-addr.arpa"):
            parts = q.name[: -len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                name = self.resolver.reverse(container_id, ".".join(reversed(parts)))
                if name is not None:
                    _send(sock, response(q, ptr=name), client)
                    return
        self._relay(container_id, sock, data, q, client)

    def _relay(self, container_id: str, sock: socket.socket, data: bytes, q: Question, client) -> None:
        upstreams = self.resolver.upstreams(container_id)
        if not upstreams or len(self.pending) >= MAX_PENDING:
            _send(sock, response(q, rcode=RCODE_SERVFAIL if upstreams else RCODE_REFUSED), client)
            return
        relay = self._upstream_socket()
        new_id = int.from_bytes(os.urandom(2), "big")
        while new_id in self.pending:
            new_id = int.from_bytes(os.urandom(2), "big")
        servers = tuple(upstreams[:3])
        self.pending[new_id] = _Pending(sock, client, q.id, time.monotonic() + FORWARD_TIMEOUT, servers)
        message = struct.pack("!H", new_id) + data[2:]
        for server in servers:
            try:
                relay.sendto(message, (server, 53))
            except OSError:
                continue
        self._schedule_sweep()

    def _upstream_socket(self) -> socket.socket:
        """The relay socket, made in the host's namespace (the monitor's own) on first use."""
        if self.upstream is None:
            import selectors

            self.upstream = socket.socket(socket.AF_INET,
                                          socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            self.upstream.bind(("0.0.0.0", 0))
            self.selector.register(self.upstream, selectors.EVENT_READ, lambda s, mask: self._reply(s))
        return self.upstream

    def _reply(self, relay: socket.socket) -> None:
        for _ in range(64):
            try:
                data, source = relay.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            if len(data) < 2:
                continue
            qid = struct.unpack_from("!H", data)[0]
            pending = self.pending.get(qid)
            if pending is None or source[0] not in pending.servers:
                continue  # late, a second server's answer to a query already answered, or not from a server
            del self.pending[qid]
            _send(pending.listener, struct.pack("!H", pending.original_id) + data[2:], pending.client)

    def _schedule_sweep(self) -> None:
        if self.sweeping:
            return
        self.sweeping = True

        def sweep() -> None:
            self.sweeping = False
            now = time.monotonic()
            for qid in [k for k, p in self.pending.items() if p.deadline <= now]:
                del self.pending[qid]  # the client retries on its own; nothing to tell it
            if self.pending:
                self._schedule_sweep()
        self.add_timer(1.0, sweep)


def _send(sock: socket.socket, data: bytes, client) -> None:
    try:
        sock.sendto(data, client)
    except OSError:
        pass  # the client went away; UDP has nobody to tell
