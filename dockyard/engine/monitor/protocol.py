"""The wire between the CLI and the monitor: JSON messages, binary output frames, and passed fds.

A connection starts with one request (a JSON object on one line, fds attached with SCM_RIGHTS when the
request hands some over), answered by one JSON line. Requests that stream (start with attach, attach, exec)
then carry frames in both directions, each an 8-byte header and a payload, as Docker's multiplexed streams:

    byte 0: stream (0 stdin, 1 stdout, 2 stderr, 3 event: a JSON object such as {"exit": 0}, 4 resize: "h w")
    bytes 4-7: payload length, big-endian

One format for the monitor and, later, for the Engine API's attach endpoints.
"""

from __future__ import annotations

import array
import json
import socket
import struct

STDIN, STDOUT, STDERR, EVENT, RESIZE, CLOSE_STDIN = 0, 1, 2, 3, 4, 5
HEADER = struct.Struct(">BxxxI")
MAX_MESSAGE = 1 << 20
MAX_FDS = 8


def frame(stream: int, payload: bytes) -> bytes:
    return HEADER.pack(stream, len(payload)) + payload


def event(value: dict) -> bytes:
    return frame(EVENT, json.dumps(value).encode())


def send_message(sock: socket.socket, message: dict, fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.sendall(data)


def recv_message(sock: socket.socket, buffer: bytearray) -> tuple[dict | None, list[int]]:
    """Read one JSON line (blocking); returns (message or None at EOF, fds received with it).

    Bytes after the line stay in `buffer` for the frames that follow.
    """
    fds: list[int] = []
    while b"\n" not in buffer:
        if len(buffer) > MAX_MESSAGE:
            raise ValueError("message too long")
        data, ancdata, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(MAX_FDS * 4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                arr = array.array("i")
                arr.frombytes(payload[: len(payload) - len(payload) % arr.itemsize])
                fds.extend(arr)
        if not data:
            return None, fds
        buffer += data
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return json.loads(line), fds


def parse_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take every complete frame out of `buffer`."""
    frames = []
    while len(buffer) >= HEADER.size:
        stream, size = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + size:
            break
        frames.append((stream, bytes(buffer[HEADER.size:HEADER.size + size])))
        del buffer[:HEADER.size + size]
    return frames
