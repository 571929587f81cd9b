"""Streaming decompression helpers: ReadAhead hands on a stream's chunks from a thread of its own."""

from __future__ import annotations

import gzip
import io
import os
import threading

import pytest

from dockyard.errors import CorruptContent
from dockyard.image.compression import HashingReader, ReadAhead, decompressed


class Source:
    """A stream that can fail after some reads, block on a read, and tells whether it was read to the end."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        self.f = io.BytesIO(data)
        self.reads = 0
        self.fail_after = fail_after
        self.release = threading.Event()
        self.release.set()

    def read(self, n: int = -1) -> bytes:
        self.release.wait()
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise OSError("broken source")
        return self.f.read(n)


def read_all(stream, size: int) -> bytes:
    out = b""
    while chunk := stream.read(size):
        out += chunk
    return out


@pytest.mark.parametrize("size", [1, 1000, 4096, 1 << 20, -1])
def test_read_ahead_gives_every_byte_in_order(size: int) -> None:
    data = os.urandom(100_000)
    with ReadAhead(Source(data), chunk=4096) as ahead:
        assert read_all(ahead, size) == data
        assert ahead.read(10) == b""  # and stays at the end


def test_read_ahead_raises_the_source_error_in_the_reader() -> None:
    with ReadAhead(Source(b"x" * 10_000, fail_after=2), chunk=1000) as ahead:
        assert ahead.read(1000) == b"x" * 1000
        assert ahead.read(1000) == b"x" * 1000
        with pytest.raises(OSError, match="broken source"):
            ahead.read(1000)
        assert ahead.read(1000) == b""


def test_read_ahead_close_stops_a_thread_blocked_on_a_full_queue() -> None:
    source = Source(b"y" * 1_000_000)
    ahead = ReadAhead(source, chunk=1000, depth=2)
    assert ahead.read(10) == b"y" * 10
    ahead.close()  # the reader gave up early: the thread must not stay blocked on its queue
    assert not ahead._thread.is_alive()
    assert source.reads < 1000  # it stopped reading too


def test_read_ahead_close_waits_for_a_read_in_progress() -> None:
    source = Source(b"z" * 10_000)
    source.release.clear()  # the source blocks (a pipe whose writer is slow)
    ahead = ReadAhead(source, chunk=1000)
    threading.Timer(0.05, source.release.set).start()
    ahead.close()
    assert not ahead._thread.is_alive()


def test_corrupt_gzip_through_read_ahead_is_corrupt_content() -> None:
    data = bytearray(gzip.compress(os.urandom(300_000)))
    data[len(data) // 2] ^= 0xFF
    with ReadAhead(decompressed(io.BytesIO(bytes(data)), "gzip")) as ahead:  # type: ignore[arg-type]
        with pytest.raises(CorruptContent):
            HashingReader(ahead).drain()  # type: ignore[arg-type]


def test_prefixed_stream_readinto_across_the_seam() -> None:
    from dockyard.image.compression import PrefixedStream

    stream = PrefixedStream(b"head", io.BytesIO(b"-rest of it"))
    buf = bytearray(6)
    assert stream.readinto(buf) == 6 and buf == b"head-r"  # the head, then the rest, in one request
    buf = bytearray(100)
    n = stream.readinto(buf)  # past the seam: straight from the rest
    assert buf[:n] == b"est of it"
