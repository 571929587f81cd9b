"""Sending a blob: HEAD, conditional and Range requests, and the body.

Two ways to send the body, chosen by measurement. To a peer on another host, sendfile() (through aiohttp's
FileResponse): zero-copy, the least CPU where the network is the limit. To a loopback peer, plain writes of
1 MiB chunks: sendfile hands the socket page-cache fragments, and on loopback the receiving process pays for
that when it copies them out; with writes, skopeo pulled a 200 MiB layer in 0.67 s instead of 0.79 s here
(docker-registry, which also writes: 0.70 s). Chunks are read with RWF_NOWAIT, so a read that would wait
for the disk goes to a thread and never stalls the event loop (and with it every other client).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from pathlib import Path

from aiohttp import web

CHUNK = 1 << 20


def _is_loopback(request: web.Request) -> bool:
    peer = request.transport.get_extra_info("peername") if request.transport is not None else None
    if not peer:
        return False
    try:
        return ipaddress.ip_address(peer[0]).is_loopback
    except ValueError:
        return False


def parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """A single 'bytes=' range -> (start, end inclusive); None to send it all; "unsatisfiable" for 416.

    Several ranges are answered with the whole blob, which RFC 9110 allows.
    """
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, dash, last = header[6:].strip().partition("-")
    if not dash:
        return None
    if not first:  # the last N bytes
        if not last.isdigit() or int(last) == 0:
            return "unsatisfiable"
        return max(0, size - int(last)), size - 1
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        return "unsatisfiable"
    return start, end


def _read_chunk(fd: int, buf: bytearray, offset: int) -> int:
    return os.preadv(fd, [buf], offset)


async def send_blob(request: web.Request, path: Path, size: int, headers: dict[str, str]) -> web.StreamResponse:
    etag = headers.get("ETag")
    if etag and request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag})
    wanted = parse_range(request.headers.get("Range"), size)
    if wanted == "unsatisfiable":
        return web.Response(status=416, headers={"Content-Range": f"bytes */{size}"})
    if not _is_loopback(request) and request.method == "GET":
        return web.FileResponse(path, headers=headers)
    status, start, end = 200, 0, size - 1
    out_headers = dict(headers, **{"Accept-Ranges": "bytes"})
    if isinstance(wanted, tuple):
        status, (start, end) = 206, wanted
        out_headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    length = end - start + 1 if size else 0
    if request.method == "HEAD":
        out_headers["Content-Length"] = str(length)
        return web.Response(status=status, headers=out_headers)
    response = web.StreamResponse(status=status, headers=out_headers)
    response.content_length = length
    await response.prepare(request)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        offset, remaining = start, length
        while remaining > 0:
            buf = bytearray(min(CHUNK, remaining))
            try:
                n = os.preadv(fd, [buf], offset, os.RWF_NOWAIT)
            except BlockingIOError:
                n = await asyncio.to_thread(_read_chunk, fd, buf, offset)
            if n <= 0:
                raise ConnectionResetError(f"blob {path.name} ended early")  # truncated on disk: drop the client
            await response.write(memoryview(buf)[:n])
            offset += n
            remaining -= n
    finally:
        os.close(fd)
    await response.write_eof()
    return response
