"""`push` gzips the layers that are stored uncompressed (everything made here), as docker and podman do."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

from conftest import Server, sha256, skopeo
from test_client import Dockyard, any_registry, dockyard, seed_busybox  # noqa: F401 (fixtures)


def pushed_digest(out: str) -> str:
    return out.strip().splitlines()[-1].split("digest: ")[1].split()[0]


def test_push_sends_gzip_layers_and_keeps_the_image_id(dockyard: Dockyard, any_registry: Server,
                                                        tmp_path: Path) -> None:
    name = f"{any_registry.host}/gz/busybox:1"
    image_id = seed_busybox(dockyard, name)
    digest = pushed_digest(dockyard.run("push", name).stdout)

    copy = tmp_path / "copy"
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"dir:{copy}")
    raw = (copy / "manifest.json").read_bytes()
    assert sha256(raw) == digest
    manifest = json.loads(raw)
    config = json.loads((copy / manifest["config"]["digest"].split(":")[1]).read_bytes())
    assert sha256((copy / manifest["config"]["digest"].split(":")[1]).read_bytes()) == image_id
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    blob = (copy / layer["digest"].split(":")[1]).read_bytes()
    assert blob[:2] == b"\x1f\x8b" and len(blob) == layer["size"]
    tar = gzip.decompress(blob)
    assert [sha256(tar)] == config["rootfs"]["diff_ids"]  # the same layer, compressed
    assert len(blob) < len(tar) / 1.5

    # Locally the image is as it was: `save` still writes the uncompressed layer.
    saved = tmp_path / "saved"
    dockyard.run("save", "-o", str(tmp_path / "saved.tar"), name)
    skopeo("copy", f"docker-archive:{tmp_path / 'saved.tar'}", f"dir:{saved}")
    assert json.loads((saved / "manifest.json").read_bytes())["layers"][0]["digest"] == config["rootfs"]["diff_ids"][0]

    # Pushing again sends nothing and gives the same manifest.
    out = dockyard.run("push", name).stdout
    assert "Layer already exists" in out and ": Pushed" not in out
    assert pushed_digest(out) == digest

    # Another store makes the same bytes: the compression is deterministic.
    other = Dockyard(tmp_path / "other-root", tmp_path / "docker-config")
    seed_busybox(other, f"{any_registry.host}/gz/again:1")
    out = other.run("push", f"{any_registry.host}/gz/again:1").stdout
    assert pushed_digest(out) == digest

    # And a pull brings back the same image.
    third = Dockyard(tmp_path / "third-root", tmp_path / "docker-config")
    third.run("pull", name)
    assert third.image_id(name) == image_id


def test_gzip_blob_goes_with_its_image(dockyard: Dockyard, any_registry: Server) -> None:
    name = f"{any_registry.host}/gz/gone:1"
    seed_busybox(dockyard, name)
    blobs = dockyard.root / "blobs" / "sha256"
    before = set(p.name for p in blobs.iterdir())
    dockyard.run("push", name)
    made = set(p.name for p in blobs.iterdir()) - before
    assert len(made) == 1  # the gzip blob, kept for the next push
    dockyard.run("rmi", "-f", name)
    dockyard.run("rmi", "-f", "busybox")
    assert list(blobs.iterdir()) == []
    with sqlite3.connect(dockyard.root / "metadata.db") as db:
        assert db.execute("SELECT count(*) FROM layer_gzips").fetchone() == (0,)
    # The store forgot it: pushing a new copy of the image makes it again.
    seed_busybox(dockyard, name)
    dockyard.run("push", name)
    assert set(p.name for p in blobs.iterdir()) - before == made


def test_gzip_bytes_do_not_depend_on_the_number_of_threads() -> None:
    import io
    import os

    from dockyard.registry.client.gzip_layers import gzip_stream

    data = os.urandom(1_500_000) + b"log line 42 ok\n" * 300_000 + os.urandom(10)  # several 1 MiB blocks
    outputs = set()
    for threads in (1, 2, 3):
        out = io.BytesIO()
        gzip_stream(io.BytesIO(data), out, threads)
        assert gzip.decompress(out.getvalue()) == data
        outputs.add(out.getvalue())
    assert len(outputs) == 1


def test_push_to_an_unreachable_registry_fails_before_gzipping(dockyard: Dockyard) -> None:
    seed_busybox(dockyard, "127.0.0.1:1/gz/dead:1")
    blobs = dockyard.root / "blobs" / "sha256"
    before = set(p.name for p in blobs.iterdir())
    proc = dockyard.run("push", "127.0.0.1:1/gz/dead:1", check=False)
    assert proc.returncode != 0 and "127.0.0.1:1" in proc.stderr
    assert set(p.name for p in blobs.iterdir()) == before
    assert list((dockyard.root / "ingest").iterdir()) == []
