"""save / load / import, against real peers (skopeo, umoci) and against broken input."""

from __future__ import annotations

import gzip
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
import time

import pytest

from tests.conftest import CLI, have, store_listing
from tests.store.test_snapshots import tree

needs_skopeo = pytest.mark.skipif(not have("skopeo"), reason="skopeo not installed (apt-get install skopeo)")
needs_umoci = pytest.mark.skipif(not have("umoci"), reason="umoci not installed (apt-get install umoci)")


def image_id(dy: CLI, name: str) -> str:
    return dy.out("inspect", "-f", "{{.Id}}", name).strip()


def snapshot_tree(dy: CLI, name: str) -> dict:
    """The file tree dockyard unpacked for an image (single-layer images: its snapshot directory)."""
    data = json.loads(dy.out("image", "inspect", name))[0]["GraphDriver"]["Data"]
    return tree(data.get("UpperDir") or data["Dir"])


def test_save_load_round_trip_keeps_ids(dy, busybox, tmp_path, root):
    before = image_id(dy, "busybox")
    dy("tag", "busybox", "second:v1")
    archive = tmp_path / "two.tar"
    dy("save", "-o", str(archive), "busybox", "second:v1")
    other = CLI(tmp_path / "other")
    out = other.out("load", "-i", str(archive))
    assert sorted(out.splitlines()) == ["Loaded image: busybox:latest", "Loaded image: second:v1"]
    assert image_id(other, "busybox") == before == image_id(other, "second:v1")
    # The same archive through stdin.
    third = CLI(tmp_path / "third")
    assert "Loaded image: busybox:latest" in third.out("load", input=archive.read_bytes())
    names = tarfile.open(archive).getnames()
    assert {"manifest.json", "index.json", "oci-layout", "repositories"} <= set(names)


def test_save_by_id_has_no_tags(dy, busybox, tmp_path):
    archive = tmp_path / "byid.tar"
    dy("save", "-o", str(archive), image_id(dy, "busybox")[7:19])
    manifest = json.load(tarfile.open(archive).extractfile("manifest.json"))
    assert manifest[0]["RepoTags"] is None
    other = CLI(tmp_path / "other")
    assert other.out("load", "-i", str(archive)).startswith("Loaded image ID: sha256:")


def test_save_to_stdout(dy, busybox):
    data = dy("save", "busybox").stdout
    assert tarfile.open(fileobj=io.BytesIO(data)).getmember("manifest.json")


@needs_skopeo
@pytest.mark.parametrize("transport", ["docker-archive", "oci-archive"])
def test_archives_written_by_skopeo_load(dy, busybox, tmp_path, transport):
    oci_dir = tmp_path / "oci"
    dy("save", "-o", str(tmp_path / "ours.tar"), "busybox")
    subprocess.run(["skopeo", "copy", f"docker-archive:{tmp_path / 'ours.tar'}", f"oci:{oci_dir}:latest"],
                   check=True, capture_output=True)
    theirs = tmp_path / f"theirs-{transport}.tar"
    dest = f"{transport}:{theirs}:" + ("example.com/skopeo/bb:v1" if transport == "docker-archive" else "bb:v1")
    subprocess.run(["skopeo", "copy", f"oci:{oci_dir}:latest", dest], check=True, capture_output=True)
    other = CLI(tmp_path / "other")
    out = other.out("load", "-i", str(theirs))
    name = "example.com/skopeo/bb:v1" if transport == "docker-archive" else "bb:v1"
    assert out.strip() == f"Loaded image: {name}"
    # skopeo may re-encode the config (so the id can change), never the layers.
    layers = json.loads(other.out("image", "inspect", name))[0]["RootFS"]
    assert layers == json.loads(dy.out("image", "inspect", "busybox"))[0]["RootFS"]
    assert snapshot_tree(other, name) == snapshot_tree(dy, "busybox")


@needs_skopeo
def test_skopeo_reads_and_copies_what_we_save(dy, busybox, tmp_path):
    archive = tmp_path / "ours.tar"
    dy("save", "-o", str(archive), "busybox")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"docker-archive:{archive}"], check=True,
                                     capture_output=True).stdout)
    assert info["Os"] == "linux" and len(info["Layers"]) == 1
    oci = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{archive}:latest"], check=True,
                                    capture_output=True).stdout)
    manifest_digest = json.loads(dy.out("image", "inspect", "busybox"))[0]
    assert oci["Layers"] == info["Layers"]
    subprocess.run(["skopeo", "copy", f"docker-archive:{archive}", f"oci:{tmp_path / 'copy'}:x"], check=True,
                   capture_output=True)
    assert (tmp_path / "copy" / "index.json").exists()
    assert manifest_digest["Id"]


@needs_umoci
def test_umoci_unpacks_the_same_tree(dy, busybox, tmp_path):
    archive = tmp_path / "ours.tar"
    dy("save", "-o", str(archive), "busybox")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(archive) as tar:
        tar.extractall(layout)
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True, capture_output=True)
    assert tree(str(bundle / "rootfs")) == snapshot_tree(dy, "busybox")


def broken_archives(good: bytes) -> dict[str, bytes]:
    cases = {"truncated": good[: len(good) // 2], "garbage": b"this is not a tar" * 100, "empty": b""}
    # A layer whose bytes do not match its name.
    with tarfile.open(fileobj=io.BytesIO(good)) as src:
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w") as dst:
            for member in src:
                data = src.extractfile(member).read() if member.isreg() else None
                if member.isreg() and member.size > 100000:
                    data = data[:-1] + bytes([data[-1] ^ 1])
                dst.addfile(member, io.BytesIO(data) if data is not None else None)
        cases["digest-mismatch"] = out.getvalue()
    # A layer that writes outside its root.
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        info = tarfile.TarInfo("../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    layer = evil.getvalue()
    import hashlib

    digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
                                                                           "diff_ids": [f"sha256:{digest}"]}})
    cdigest = hashlib.sha256(config.encode()).hexdigest()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in ((f"{digest}/layer.tar", layer), (f"{cdigest}.json", config.encode()),
                           ("manifest.json", json.dumps([{"Config": f"{cdigest}.json", "RepoTags": ["evil:1"],
                                                          "Layers": [f"{digest}/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cases["escaping-layer"] = out.getvalue()
    # An unknown media type in an OCI layout.
    cases["unknown-media-type"] = good.replace(b"application/vnd.oci.image.manifest.v1+json",
                                               b"application/vnd.example.unknown.v1+json!!")
    return cases


@pytest.mark.parametrize("case", ["truncated", "garbage", "empty", "digest-mismatch", "escaping-layer",
                                  "unknown-media-type"])
@pytest.mark.parametrize("via", ["stdin", "file"])
def test_broken_archives_leave_the_store_as_it_was(dy, busybox, busybox_archive, tmp_path, case, via):
    data = broken_archives(busybox_archive.read_bytes())[case]
    dy("tag", "busybox", "keep:me")
    before = store_listing(dy.root)
    if via == "stdin":
        result = dy("load", input=data, check=False)
    else:
        (tmp_path / "broken.tar").write_bytes(data)
        result = dy("load", "-i", str(tmp_path / "broken.tar"), check=False)
    assert result.returncode != 0
    assert result.stderr.strip(), "a clear error is printed"
    assert b"Traceback" not in result.stderr
    assert store_listing(dy.root) == before
    assert not os.path.exists(tmp_path.parent / "escape")


def test_load_killed_halfway_is_cleaned_up(dy, busybox_archive, tmp_path):
    """SIGKILL in the middle of a load: the store stays consistent and the next command cleans up."""
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "payload", "wb") as f:
        f.write(os.urandom(64 << 20))
    rootfs = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(rootfs), "-C", str(big), "payload"], check=True)
    dy("import", str(rootfs), "big:1")
    archive = tmp_path / "big.tar"
    dy("save", "-o", str(archive), "big:1")
    fresh = CLI(tmp_path / "fresh")
    fresh("load", "-i", str(busybox_archive))
    before = store_listing(fresh.root)
    # Feed the archive slowly through a pipe so the kill lands mid-stream.
    proc = subprocess.Popen([sys.executable, "-m", "dockyard", "--root", str(fresh.root), "load"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(archive, "rb") as f:
        proc.stdin.write(f.read(40 << 20))
        proc.stdin.flush()
    time.sleep(0.5)
    proc.kill()
    proc.wait()
    assert os.listdir(fresh.root / "ingest") or len(os.listdir(fresh.root / "blobs" / "sha256")) > 3
    assert "busybox" in fresh.out("images")  # the next command works...
    assert store_listing(fresh.root) == before  # ...and has removed the leftovers


def test_import_file_stdin_and_url(dy, tmp_path):
    src = tmp_path / "src"
    (src / "etc").mkdir(parents=True)
    (src / "etc" / "motd").write_text("hi\n")
    plain = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-cf", str(plain), "-C", str(src), "."], check=True)
    gz = tmp_path / "rootfs.tar.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))

    first = dy.out("import", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV A=1 B=2", "-c", "WORKDIR /srv",
                   "-c", "EXPOSE 80/tcp 53/udp", "-c", "ENTRYPOINT echo hi", "-m", "from a file",
                   str(plain), "imported:file").strip()
    assert first.startswith("sha256:")
    config = json.loads(dy.out("image", "inspect", "imported:file"))[0]
    assert config["Config"]["Cmd"] == ["/bin/sh"] and config["Config"]["Env"] == ["A=1", "B=2"]
    assert config["Config"]["WorkingDir"] == "/srv"
    assert config["Config"]["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert config["Config"]["Entrypoint"] == ["/bin/sh", "-c", "echo hi"]
    assert config["Comment"] == "from a file"
    assert "from a file" in dy.out("history", "imported:file")

    from_stdin = dy.out("import", "-", "imported:stdin", input=gz.read_bytes()).strip()
    # gzip is undone before storing: same tar, same layer, same diff id.
    assert json.loads(dy.out("image", "inspect", "imported:stdin"))[0]["RootFS"] == config["RootFS"]
    assert from_stdin.startswith("sha256:")

    handler = http.server.SimpleHTTPRequestHandler
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: handler(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/rootfs.tar.gz"
        dy("import", url, "imported:url")
        assert json.loads(dy.out("image", "inspect", "imported:url"))[0]["RootFS"] == config["RootFS"]
    finally:
        server.shutdown()


def test_import_bad_input(dy, tmp_path):
    (tmp_path / "not.tar").write_bytes(b"plain text, not a tarball" * 50)
    dy("images")
    before = store_listing(dy.root)
    for args in (["import", str(tmp_path / "not.tar"), "x:1"], ["import", str(tmp_path / "missing.tar")],
                 ["import", "-c", "RUN rm -rf /", str(tmp_path / "not.tar")],
                 ["import", str(tmp_path / "not.tar"), "Bad:Name"]):
        result = dy(*args, check=False)
        assert result.returncode != 0 and b"Traceback" not in result.stderr, result.stderr
    assert store_listing(dy.root) == before


def _oci_archive_with_layer(layer: bytes, media_type: str, path) -> None:
    """An OCI image layout tar holding one image with the given (possibly compressed) layer."""
    import hashlib

    def digest(data: bytes) -> str:
        return "sha256:" + hashlib.sha256(data).hexdigest()

    import zstandard

    if media_type.endswith("zstd"):
        raw = zstandard.ZstdDecompressor().decompress(layer)
    elif media_type.endswith("gzip"):
        raw = gzip.decompress(layer)
    else:
        raw = layer
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [digest(raw)]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": digest(config), "size": len(config)},
                           "layers": [{"mediaType": media_type, "digest": digest(layer), "size": len(layer)}]}).encode()
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest(manifest),
        "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "example.com/zstd:1"}}]}).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in [("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index)] + [
                (f"blobs/sha256/{digest(d)[7:]}", d) for d in (config, manifest, layer)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_zstd_and_gzip_layers_load(dy, tmp_path):
    import zstandard

    from tests.image.layertar import LayerTar

    layer = LayerTar().dir("etc").file("etc/hello", b"compressed layers work\n").bytes()
    for media_type, data in (("application/vnd.oci.image.layer.v1.tar+zstd", zstandard.compress(layer)),
                             ("application/vnd.oci.image.layer.v1.tar+gzip", gzip.compress(layer))):
        archive = tmp_path / "img.tar"
        _oci_archive_with_layer(data, media_type, archive)
        fresh = CLI(tmp_path / media_type.rsplit("+", 1)[1])
        assert fresh.out("load", "-i", str(archive)).strip() == "Loaded image: example.com/zstd:1"
        fs = json.loads(fresh.out("image", "inspect", "example.com/zstd:1"))[0]["GraphDriver"]["Data"]
        with open(os.path.join(fs.get("UpperDir") or fs["Dir"], "etc", "hello")) as f:
            assert f.read() == "compressed layers work\n"
        # Saving keeps the compressed blob as it came: the same digests come back out.
        fresh("save", "-o", str(tmp_path / "again.tar"), "example.com/zstd:1")
        names = set(tarfile.open(tmp_path / "again.tar").getnames())
        assert {n for n in tarfile.open(archive).getnames() if n.startswith("blobs/sha256/")} <= names


def test_plain_copy_storage_driver_end_to_end(tmp_path, busybox_archive):
    """The vfs fallback: load, run (with a change), commit nothing, remove; same behaviour as overlay."""
    from tests.conftest import stop_everything

    cli = CLI(tmp_path / "vfsroot")
    env = {"DOCKYARD_STORAGE_DRIVER": "vfs"}
    try:
        cli("load", "-i", str(busybox_archive), env=env)
        assert (cli.root / "storage-driver").read_text().strip() == "vfs"
        assert cli.out("run", "--name", "v1", "busybox", "sh", "-c", "echo data > /kept; cat /etc/group | head -1",
                       env=env) == "root:x:0:\n"
        cli("start", "-a", "v1", env=env)
        assert cli.out("run", "--rm", "busybox", "cat", "/etc/passwd", env=env).startswith("root:")
        cli("rm", "v1", env=env)
        cli("rmi", "busybox", env=env)
        assert list((cli.root / "blobs" / "sha256").iterdir()) == []
    finally:
        stop_everything(cli)
