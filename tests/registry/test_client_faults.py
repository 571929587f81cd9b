"""The client against registries that misbehave: dropped connections mid-layer, wrong bytes, wrong manifests."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest
from aiohttp import web
from conftest import layer_from_bytes, sha256

from dockyard.errors import CorruptContent, HostError
from dockyard.registry.client.progress import Progress
from dockyard.registry.client.pull import PullOptions, pull_image
from dockyard.store.store import Store


@dataclass
class FakeRegistry:
    """A registry serving one image, that can cut a layer short or serve wrong bytes."""

    manifest: bytes
    blobs: dict[str, bytes]
    cut_first_gets: int = 0                 # layer GETs that send half the body and drop the connection
    corrupt: bool = False                   # serve the layer with one byte flipped
    ignore_range: bool = False
    requests: list[str] = field(default_factory=list)
    port: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path} {request.headers.get('Range', '')}".strip())
        path = request.path
        if path == "/v2/":
            return web.json_response({})
        if "/manifests/" in path:
            return web.Response(body=self.manifest, content_type="application/vnd.oci.image.manifest.v1+json",
                                headers={"Docker-Content-Digest": sha256(self.manifest)})
        digest = path.rsplit("/", 1)[1]
        data = self.blobs.get(digest)
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        if self.corrupt and len(data) > 1000:
            data = data[:500] + bytes([data[500] ^ 1]) + data[501:]
        start = 0
        range_header = request.headers.get("Range")
        if range_header and not self.ignore_range:
            start = int(range_header.split("=")[1].split("-")[0])
        response = web.StreamResponse(status=206 if start else 200)
        response.content_length = len(data) - start
        if start:
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        await response.prepare(request)
        if len(data) > 1000 and self.cut_first_gets > 0:
            self.cut_first_gets -= 1
            await response.write(data[start:start + (len(data) - start) // 2])
            await asyncio.sleep(0.05)
            assert request.transport is not None
            request.transport.close()  # the connection drops mid-layer
            return response
        await response.write(data[start:])
        await response.write_eof()
        return response


@pytest.fixture
def fake_image() -> tuple[bytes, dict[str, bytes], bytes]:
    layer = layer_from_bytes("big.bin", os.urandom(3 << 20), compress=True)
    manifest, blobs = image_with(layer, sha256(gzip.decompress(layer)))
    return manifest, blobs, layer


def serve(fake: FakeRegistry) -> Iterator[FakeRegistry]:
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner_box: list[web.AppRunner] = []

    async def start() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", fake.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        runner_box.append(runner)

    def run() -> None:
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner_box[0].cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(10)
    yield fake
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    from dockyard.engine.engine import Engine

    e = Engine(tmp_path / "root")
    yield e
    e.close()


def stored_blobs(store: Store) -> set[str]:
    return set(store.blobs.digests())


def test_interrupted_download_resumes_with_range(engine, fake_image) -> None:  # type: ignore[no-untyped-def]
    manifest, blobs, layer = fake_image
    for fake in serve(FakeRegistry(manifest, blobs, cut_first_gets=2)):
        results = pull_image(engine.images, f"127.0.0.1:{fake.port}/x/big:1", PullOptions(), Progress())
        assert results[0].image.id == sha256(blobs[next(d for d in blobs if blobs[d] != layer)])
        layer_gets = [r for r in fake.requests if r.startswith(f"GET /v2/x/big/blobs/{sha256(layer)}")]
        assert len(layer_gets) == 3
        assert layer_gets[1].endswith(f"bytes={len(layer) // 2}-")  # resumed where it stopped
        assert engine.store.blobs.read(sha256(layer)) == layer


def test_download_restarts_when_registry_ignores_range(engine, fake_image) -> None:  # type: ignore[no-untyped-def]
    manifest, blobs, layer = fake_image
    for fake in serve(FakeRegistry(manifest, blobs, cut_first_gets=1, ignore_range=True)):
        pull_image(engine.images, f"127.0.0.1:{fake.port}/x/big:1", PullOptions(), Progress())
        assert engine.store.blobs.read(sha256(layer)) == layer


def test_corrupt_layer_is_refused_and_nothing_stored(engine, fake_image) -> None:  # type: ignore[no-untyped-def]
    manifest, blobs, layer = fake_image
    for fake in serve(FakeRegistry(manifest, blobs, corrupt=True)):
        with pytest.raises(CorruptContent):
            pull_image(engine.images, f"127.0.0.1:{fake.port}/x/big:1", PullOptions(), Progress())
        assert sha256(layer)[7:] not in {d[7:] for d in stored_blobs(engine.store)}
        assert engine.images.records.all() == []
        assert list(engine.store.blobs.ingest_files()) == []


def test_manifest_not_matching_its_digest_is_refused(engine, fake_image) -> None:  # type: ignore[no-untyped-def]
    manifest, blobs, _ = fake_image
    for fake in serve(FakeRegistry(manifest, blobs)):
        wrong = sha256(b"another manifest")
        with pytest.raises(CorruptContent):
            pull_image(engine.images, f"127.0.0.1:{fake.port}/x/big@{wrong}", PullOptions(), Progress())
        assert engine.images.records.all() == []


def test_connection_that_keeps_dropping_fails_cleanly(engine, fake_image) -> None:  # type: ignore[no-untyped-def]
    manifest, blobs, layer = fake_image
    for fake in serve(FakeRegistry(manifest, blobs, cut_first_gets=100)):
        with pytest.raises(HostError):
            pull_image(engine.images, f"127.0.0.1:{fake.port}/x/big:1", PullOptions(), Progress())
        assert engine.images.records.all() == []
        assert list(engine.store.blobs.ingest_files()) == []


def multi_layer_image(count: int) -> tuple[bytes, dict[str, bytes], list[tuple[str, bytes]]]:
    files = [(f"f{i}.bin", os.urandom((1 + i) << 20)) for i in range(count)]
    layers = [layer_from_bytes(name, data, compress=i % 2 == 0) for i, (name, data) in enumerate(files)]
    diff_ids = [sha256(gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer) for layer in layers]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha256(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar" +
                                       ("+gzip" if layer[:2] == b"\x1f\x8b" else ""),
                                       "digest": sha256(layer), "size": len(layer)} for layer in layers]}).encode()
    blobs = {sha256(config): config, **{sha256(layer): layer for layer in layers}}
    return manifest, blobs, files


def count_ordinary_unpacks(engine) -> list[str]:  # type: ignore[no-untyped-def]
    calls: list[str] = []
    original = engine.images._unpack_layer

    def spy(lease, layer, diff_id, chain_id, parent):  # type: ignore[no-untyped-def]
        calls.append(layer.digest)
        return original(lease, layer, diff_id, chain_id, parent)

    engine.images._unpack_layer = spy
    return calls


def check_unpacked(engine, ref: str, files: list[tuple[str, bytes]]) -> None:  # type: ignore[no-untyped-def]
    image = engine.images.resolve(ref)
    top = engine.store.snapshots.find(image.chain_id)
    chain = engine.store.snapshots.chain(top.key)
    found = {}
    for snap in chain:
        for name, data in files:
            path = Path(engine.store.snapshots.fs(snap)) / name
            if path.exists():
                found[name] = path.read_bytes() == data
    assert found == {name: True for name, _ in files}


def test_layers_unpacked_while_downloading(engine) -> None:  # type: ignore[no-untyped-def]
    manifest, blobs, files = multi_layer_image(3)
    calls = count_ordinary_unpacks(engine)
    for fake in serve(FakeRegistry(manifest, blobs)):
        ref = f"127.0.0.1:{fake.port}/x/multi:1"
        pull_image(engine.images, ref, PullOptions(), Progress())
        assert calls == []  # every layer went through the streaming unpack
        check_unpacked(engine, ref, files)


def test_streaming_falls_back_when_download_restarts(engine, fake_image) -> None:  # type: ignore[no-untyped-def]
    manifest, blobs, layer = fake_image
    calls = count_ordinary_unpacks(engine)
    for fake in serve(FakeRegistry(manifest, blobs, cut_first_gets=1, ignore_range=True)):
        ref = f"127.0.0.1:{fake.port}/x/big:1"
        pull_image(engine.images, ref, PullOptions(), Progress())
        assert calls == [sha256(layer)]  # the stream was useless after the restart: unpacked the ordinary way
        assert engine.store.snapshots.find(engine.images.resolve(ref).chain_id) is not None
        active = engine.store.db.query("SELECT key FROM snapshots WHERE kind = 'active'")
        assert active == []


def test_spill_limit_leaves_layers_to_ordinary_unpack(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dockyard.registry.client import unpack

    monkeypatch.setattr(unpack, "SPILL_LIMIT", 1000)
    manifest, blobs, files = multi_layer_image(3)
    for fake in serve(FakeRegistry(manifest, blobs)):
        ref = f"127.0.0.1:{fake.port}/x/multi:1"
        pull_image(engine.images, ref, PullOptions(), Progress())
        check_unpacked(engine, ref, files)
        assert engine.store.db.query("SELECT key FROM snapshots WHERE kind = 'active'") == []
        assert list((engine.store.root / "tmp").iterdir()) == []


def image_with(layer: bytes, diff_id: str) -> tuple[bytes, dict[str, bytes]]:
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": sha256(config), "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": sha256(layer), "size": len(layer)}]}).encode()
    return manifest, {sha256(config): config, sha256(layer): layer}


def assert_nothing_left(engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.images.records.all() == []
    assert engine.store.db.query("SELECT key FROM snapshots") == []
    assert list(engine.store.blobs.ingest_files()) == []
    assert [t.name for t in threading.enumerate() if t.name in ("unpack", "read-ahead")] == []


def test_streamed_layer_not_matching_its_diff_id_is_refused(engine) -> None:  # type: ignore[no-untyped-def]
    layer = layer_from_bytes("big.bin", os.urandom(3 << 20), compress=True)
    manifest, blobs = image_with(layer, sha256(b"not this layer"))
    for fake in serve(FakeRegistry(manifest, blobs)):
        with pytest.raises(CorruptContent, match="diff id"):
            pull_image(engine.images, f"127.0.0.1:{fake.port}/x/big:1", PullOptions(), Progress())
        assert_nothing_left(engine)


def test_streamed_layer_escaping_its_root_is_refused(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io
    import tarfile

    from dockyard.errors import UnsafeLayer

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        big = tarfile.TarInfo("big.bin")
        big.size = 3 << 20
        tar.addfile(big, io.BytesIO(os.urandom(big.size)))  # so the download is still going when it fails
        escape = tarfile.TarInfo("../escaped")
        escape.size = 1
        tar.addfile(escape, io.BytesIO(b"x"))
    layer = gzip.compress(raw.getvalue())
    manifest, blobs = image_with(layer, sha256(raw.getvalue()))
    for fake in serve(FakeRegistry(manifest, blobs)):
        with pytest.raises(UnsafeLayer):
            pull_image(engine.images, f"127.0.0.1:{fake.port}/x/big:1", PullOptions(), Progress())
        assert_nothing_left(engine)
        assert not (engine.store.root / "escaped").exists()


def test_streamed_layer_extracted_from_wrong_bytes_is_never_committed(engine) -> None:  # type: ignore[no-untyped-def]
    """The extraction may finish before the blob is verified (it reads on while the blob is fsynced); a blob
    that then fails its digest must still leave no snapshot, even though its tar matched the diff id."""
    expected = layer_from_bytes("f.bin", os.urandom(2 << 20), compress=False)
    served = layer_from_bytes("f.bin", os.urandom(2 << 20), compress=False)
    assert len(served) == len(expected)
    manifest, blobs = image_with(expected, sha256(served))
    blobs[sha256(expected)] = served
    for fake in serve(FakeRegistry(manifest, blobs)):
        with pytest.raises(CorruptContent, match="digest mismatch"):
            pull_image(engine.images, f"127.0.0.1:{fake.port}/x/wrong:1", PullOptions(), Progress())
        assert_nothing_left(engine)
