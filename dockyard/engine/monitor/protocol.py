"""The wire between the CLI and the monitor: frames carrying messages, output and input, and passed fds.

Everything is a frame: an 8-byte header and a payload, the layout of Docker's multiplexed streams:

    byte 0: kind (0 stdin, 1 stdout, 2 stderr, 3 event, 4 resize "h w", 5 close stdin, 6 message)
    bytes 4-7: payload length, big-endian

A connection starts with one request (a message frame; fds ride along with SCM_RIGHTS when the request hands
some over), answered by one message frame. Requests that stream (run, start with attach, attach, exec) then
carry output and input frames, and events such as {"exit": 0}.

Messages and events are marshal-encoded dicts of plain values. Not JSON: this is a private wire between two
processes of the same dockyard (the monitor is started with the command's own interpreter), and the json
module costs every command ~5 ms of imports (it pulls in `re`), a sixth of what `dockyard exec` may take.
The monitor accepts only a dict, and only from root (the socket is 0600).
"""

from __future__ import annotations

import _socket  # the C module: `socket` imports enum and more, which a short-lived command need not pay for
import marshal
import struct

STDIN, STDOUT, STDERR, EVENT, RESIZE, CLOSE_STDIN, MESSAGE = 0, 1, 2, 3, 4, 5, 6
HEADER = struct.Struct(">BxxxI")
MAX_MESSAGE = 1 << 20
MAX_FDS = 8
MARSHAL_VERSION = 4


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


def encode(value: dict) -> bytes:
    return marshal.dumps(value, MARSHAL_VERSION)


def decode(payload: bytes) -> dict:
    try:
        value = marshal.loads(payload)
    except (EOFError, ValueError, TypeError) as e:
        raise ValueError(f"malformed message: {e}") from None
    if not isinstance(value, dict):
        raise ValueError("malformed message: not a mapping")
    return value


def message(value: dict) -> bytes:
    return frame(MESSAGE, encode(value))


def event(value: dict) -> bytes:
    return frame(EVENT, encode(value))


def send_message(sock, value: dict, fds: list[int] | None = None) -> None:
    data = message(value)
    if fds:
        # (struct, not array: importing array imports collections, ~1 ms of every command's start-up)
        sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack(f"{len(fds)}i", *fds))])
    else:
        sock.sendall(data)


def received_fds(ancdata) -> list[int]:
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            fds.extend(struct.unpack(f"{len(payload) // 4}i", payload[: len(payload) - len(payload) % 4]))
    return fds


def recv_message(sock, buffer: bytearray) -> tuple[dict | None, list[int]]:
    """Read the first message frame (blocking); returns (message or None at EOF, fds received with it).

    Bytes after it stay in `buffer` for the frames that follow.
    """
    fds: list[int] = []
    while True:
        if len(buffer) >= HEADER.size:
            kind, size = HEADER.unpack_from(buffer)
            if kind != MESSAGE or size > MAX_MESSAGE:
                raise ValueError("the peer does not speak this protocol")
            if len(buffer) >= HEADER.size + size:
                payload = bytes(buffer[HEADER.size:HEADER.size + size])
                del buffer[:HEADER.size + size]
                return decode(payload), fds
        data, ancdata, _, _ = sock.recvmsg(65536, _socket.CMSG_SPACE(MAX_FDS * 4))
        fds.extend(received_fds(ancdata))
        if not data:
            return None, fds
        buffer += data


def parse_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete frame out of `buffer`."""
    frames = []
    while len(buffer) >= HEADER.size:
        kind, size = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + size:
            break
        frames.append((kind, bytes(buffer[HEADER.size:HEADER.size + size])))
        del buffer[:HEADER.size + size]
    return frames


def connect(path: str):
    """A connected unix stream socket (the C-level object: connect, sendall, sendmsg, recv, recvmsg, close)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


def request(path: str, value: dict) -> dict | None:
    """One request, one reply (for tools and tests: `request(socket_path, {"op": "shutdown"})`)."""
    sock = connect(path)
    try:
        send_message(sock, value)
        reply, _ = recv_message(sock, bytearray())
        return reply
    finally:
        sock.close()
