"""The embedded DNS server of user-defined networks: containers find each other by name and alias.

Docker's design, in our monitor: every container on a user network gets UDP and TCP sockets bound to
127.0.0.11:53 *inside its own network namespace* (the monitor enters the namespace to create them, and they
stay there), and its resolv.conf says `nameserver 127.0.0.11`. All those sockets are served by the monitor's
one event loop, so the server costs two sockets per container rather than a process. Docker binds a random
port and DNATs 53 to it with iptables inside every namespace; binding 53 directly saves that per-container
rule set (the container can still run its own resolver on any other address).

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
MAX_TCP_CONNECTIONS = 16  # per container; the least recently active goes first
TCP_IDLE = 10.0
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
    reply: Callable[[bytes], None]
    original_id: int
    deadline: float
    servers: tuple[str, ...]  # only their answers are relayed back (a spoofed reply needs their address)
    owner: str                # the container that asked


class Listening:
    """The sockets of one container's server: UDP, and TCP for the answers too large for UDP."""

    def __init__(self, udp: socket.socket, tcp: socket.socket) -> None:
        self.udp, self.tcp = udp, tcp
        self.connections: dict[socket.socket, _TcpConnection] = {}

    def close(self) -> None:
        for sock in [self.udp, self.tcp, *self.connections]:
            sock.close()
        self.connections.clear()


class _TcpConnection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last_active = time.monotonic()


class DnsServer:
    """Listeners (one per container namespace) and the relay socket, on the monitor's selector."""

    def __init__(self, selector, resolver: Resolver,
                 add_timer: Callable[[float, Callable[[], None]], object]) -> None:
        self.selector = selector
        self.resolver = resolver
        self.add_timer = add_timer
        self.listeners: dict[str, Listening] = {}
        self.upstream: socket.socket | None = None
        self.pending: dict[int, _Pending] = {}
        self.sweeping = False

    # --- listeners ------------------------------------------------------------------------------------------

    @staticmethod
    def open_listener() -> Listening:
        """Call inside the container's namespace (loopback up): the sockets stay bound there."""
        flags = socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | flags)
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM | flags)
        try:
            udp.bind((DNS_ADDRESS, 53))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((DNS_ADDRESS, 53))
            tcp.listen(16)
        except BaseException:
            udp.close()
            tcp.close()
            raise
        return Listening(udp, tcp)

    def serve(self, container_id: str, listening: Listening) -> None:
        import selectors

        self.close(container_id)
        self.listeners[container_id] = listening
        self.selector.register(listening.udp, selectors.EVENT_READ,
                               lambda s, mask: self._datagrams(container_id, s))
        self.selector.register(listening.tcp, selectors.EVENT_READ,
                               lambda s, mask: self._accept(container_id, listening))

    def close(self, container_id: str) -> None:
        listening = self.listeners.pop(container_id, None)
        if listening is None:
            return
        for sock in [listening.udp, listening.tcp, *listening.connections]:
            self._unregister(sock)
        listening.close()
        for qid in [k for k, p in self.pending.items() if p.owner == container_id]:
            del self.pending[qid]

    def close_all(self) -> None:
        for container_id in list(self.listeners):
            self.close(container_id)
        if self.upstream is not None:
            self._unregister(self.upstream)
            self.upstream.close()
            self.upstream = None

    def _unregister(self, sock: socket.socket) -> None:
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass

    # --- UDP ------------------------------------------------------------------------------------------------

    def _datagrams(self, container_id: str, sock: socket.socket) -> None:
        for _ in range(64):  # drain what is there, a bounded amount per event
            try:
                data, client = sock.recvfrom(4096)
            except OSError:  # BlockingIOError: drained
                return
            self._answer(container_id, data, lambda answer, c=client: _send(sock, answer, c))

    # --- TCP: two-byte length, then the message; several per connection ------------------------------------

    def _accept(self, container_id: str, listening: Listening) -> None:
        import selectors

        try:
            sock, _ = listening.tcp.accept()
        except OSError:
            return
        sock.setblocking(False)
        if len(listening.connections) >= MAX_TCP_CONNECTIONS:
            oldest = min(listening.connections.values(), key=lambda c: c.last_active)
            self._drop(listening, oldest)
        connection = _TcpConnection(sock)
        listening.connections[sock] = connection
        self.selector.register(sock, selectors.EVENT_READ,
                               lambda s, mask: self._tcp_event(container_id, listening, connection, mask))
        self._schedule_sweep()

    def _tcp_event(self, container_id: str, listening: Listening, connection: _TcpConnection,
                   mask: int) -> None:
        import selectors

        if mask & selectors.EVENT_WRITE:
            self._flush(listening, connection)
        if not mask & selectors.EVENT_READ or connection.sock not in listening.connections:
            return
        try:
            data = connection.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._drop(listening, connection)
            return
        connection.last_active = time.monotonic()
        connection.inbuf += data
        while len(connection.inbuf) >= 2:
            length = struct.unpack_from("!H", connection.inbuf)[0]
            if len(connection.inbuf) < 2 + length:
                break
            message = bytes(connection.inbuf[2:2 + length])
            del connection.inbuf[:2 + length]
            self._answer(container_id, message,
                         lambda answer: self._tcp_send(listening, connection, answer))

    def _tcp_send(self, listening: Listening, connection: _TcpConnection, answer: bytes) -> None:
        if connection.sock not in listening.connections:
            return
        connection.outbuf += struct.pack("!H", len(answer)) + answer
        self._flush(listening, connection)

    def _flush(self, listening: Listening, connection: _TcpConnection) -> None:
        import selectors

        try:
            while connection.outbuf:
                del connection.outbuf[:connection.sock.send(connection.outbuf)]
        except BlockingIOError:
            pass
        except OSError:
            self._drop(listening, connection)
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if connection.outbuf else 0)
        self.selector.modify(connection.sock, events, self.selector.get_key(connection.sock).data)

    def _drop(self, listening: Listening, connection: _TcpConnection) -> None:
        if listening.connections.pop(connection.sock, None) is not None:
            self._unregister(connection.sock)
            connection.sock.close()

    # --- answers and the relay ------------------------------------------------------------------------------

    def _answer(self, container_id: str, data: bytes, reply: Callable[[bytes], None]) -> None:
        try:
            q = parse_query(data)
        except Malformed:
            return
        if q.qclass == CLASS_IN and q.qtype in (TYPE_A, TYPE_AAAA) and q.name:
            addresses = self.resolver.lookup(container_id, q.name)
            if addresses is not None:
                # Known name: its IPv4 addresses; no IPv6 ones (an empty answer, not an error).
                reply(response(q, addresses=addresses if q.qtype == TYPE_A else []))
                return
        if q.qclass == CLASS_IN and q.qtype == TYPE_PTR and q.name.endswith(".in-addr.arpa"):
            parts = q.name[: -len(".in-addr.arpa")].split(".")
            if len(parts) == 4:
                name = self.resolver.reverse(container_id, ".".join(reversed(parts)))
                if name is not None:
                    reply(response(q, ptr=name))
                    return
        self._relay(container_id, data, q, reply)

    def _relay(self, container_id: str, data: bytes, q: Question, reply: Callable[[bytes], None]) -> None:
        upstreams = self.resolver.upstreams(container_id)
        if not upstreams or len(self.pending) >= MAX_PENDING:
            reply(response(q, rcode=RCODE_SERVFAIL if upstreams else RCODE_REFUSED))
            return
        relay = self._upstream_socket()
        new_id = int.from_bytes(os.urandom(2), "big")
        while new_id in self.pending:
            new_id = int.from_bytes(os.urandom(2), "big")
        servers = tuple(upstreams[:3])
        deadline = time.monotonic() + FORWARD_TIMEOUT
        self.pending[new_id] = _Pending(reply, q.id, deadline, servers, container_id)
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
            except OSError:  # BlockingIOError: drained
                return
            if len(data) < 2:
                continue
            qid = struct.unpack_from("!H", data)[0]
            pending = self.pending.get(qid)
            if pending is None or source[0] not in pending.servers:
                continue  # late, a second server's answer to a query already answered, or not from a server
            del self.pending[qid]
            pending.reply(struct.pack("!H", pending.original_id) + data[2:])

    def _schedule_sweep(self) -> None:
        if self.sweeping:
            return
        self.sweeping = True

        def sweep() -> None:
            self.sweeping = False
            now = time.monotonic()
            for qid in [k for k, p in self.pending.items() if p.deadline <= now]:
                del self.pending[qid]  # the client retries on its own; nothing to tell it
            idle = False
            for listening in self.listeners.values():
                for connection in list(listening.connections.values()):
                    if now - connection.last_active > TCP_IDLE:
                        self._drop(listening, connection)
                idle = idle or bool(listening.connections)
            if self.pending or idle:
                self._schedule_sweep()
        self.add_timer(1.0, sweep)


def _send(sock: socket.socket, data: bytes, client) -> None:
    try:
        sock.sendto(data, client)
    except OSError:
        pass  # the client went away; UDP has nobody to tell
