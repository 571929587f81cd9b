"""skopeo copies images into and out of `dockyard registry serve`; gc; TLS; concurrent pulls."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
import requests
from conftest import (
    OciImage,
    Server,
    busybox_layer,
    layer_from_bytes,
    oci_manifest_digest,
    sha256,
    skopeo,
    start_dockyard_registry,
    write_oci_index,
    write_oci_layout,
)


def copy_round_trip(server: Server, image: OciImage, name: str, tmp_path: Path, *extra: str) -> str:
    dest = f"docker://{server.host}/{name}"
    skopeo("copy", "--dest-tls-verify=false", *extra, image.ref, dest)
    back = tmp_path / f"back-{name.replace('/', '-').replace(':', '-')}"
    skopeo("copy", "--src-tls-verify=false", dest, f"oci:{back}:t")
    return oci_manifest_digest(back, "t")


def test_skopeo_oci_image_round_trip(registry: Server, make_layout, tmp_path: Path) -> None:
    image = make_layout([busybox_layer(), layer_from_bytes("data.bin", os.urandom(300_000))])
    assert copy_round_trip(registry, image, "lib/busybox:1.0", tmp_path) == image.digest
    inspect = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/lib/busybox:1.0").stdout)
    assert inspect["Digest"] == image.digest
    assert len(inspect["Layers"]) == 2


def test_skopeo_docker_schema2_round_trip(registry: Server, busybox_image: OciImage, tmp_path: Path) -> None:
    """skopeo converts to schema2 on the way in; `dir:` keeps the manifest's bytes on the way out and back in."""
    dest = f"docker://{registry.host}/docker/style:v2"
    skopeo("copy", "--dest-tls-verify=false", "--format", "v2s2", busybox_image.ref, dest)
    r = requests.get(f"{registry.url}/v2/docker/style/manifests/v2",
                     headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    digest = r.headers["Docker-Content-Digest"]
    assert sha256(r.content) == digest
    skopeo("copy", "--src-tls-verify=false", dest, f"dir:{tmp_path / 'dir'}")
    assert sha256((tmp_path / "dir" / "manifest.json").read_bytes()) == digest
    skopeo("copy", "--dest-tls-verify=false", f"dir:{tmp_path / 'dir'}", f"docker://{registry.host}/again:v2")
    r = requests.head(f"{registry.url}/v2/again/manifests/v2",
                      headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert r.headers["Docker-Content-Digest"] == digest


def test_skopeo_multi_arch_index(registry: Server, tmp_path: Path) -> None:
    """An OCI layout whose tag names an index of two platforms; `skopeo copy --all` both ways."""
    amd = write_oci_layout(tmp_path / "amd", "x", [busybox_layer()])
    arm = write_oci_layout(tmp_path / "arm", "x", [layer_from_bytes("arm", b"arm64 bits")],
                           config_extra={"architecture": "arm64"})
    layout = tmp_path / "multi"
    shutil.copytree(amd.layout, layout)
    for blob in (arm.layout / "blobs" / "sha256").iterdir():
        shutil.copy(blob, layout / "blobs" / "sha256" / blob.name)
    index_digest = write_oci_index(layout, [(amd, {"os": "linux", "architecture": "amd64"}),
                                            (arm, {"os": "linux", "architecture": "arm64"})])
    dest = f"docker://{registry.host}/multi/arch:latest"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", dest)
    back = tmp_path / "back"
    skopeo("copy", "--all", "--src-tls-verify=false", dest, f"oci:{back}:m")
    assert oci_manifest_digest(back, "m") == index_digest
    raw = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", dest).stdout)
    assert [m["platform"]["architecture"] for m in raw["manifests"]] == ["amd64", "arm64"]


def test_gc_removes_only_unreferenced_blobs(tmp_path: Path, make_layout) -> None:
    root = tmp_path / "reg"
    server = start_dockyard_registry(root)
    keep = make_layout([busybox_layer()])
    doomed = make_layout([layer_from_bytes("doomed", b"doomed layer")])
    try:
        skopeo("copy", "--dest-tls-verify=false", keep.ref, f"docker://{server.host}/keep:1")
        skopeo("copy", "--dest-tls-verify=false", doomed.ref, f"docker://{server.host}/doomed:1")
        stray = b"a blob no manifest names"
        requests.post(f"{server.url}/v2/keep/blobs/uploads/", params={"digest": sha256(stray)}, data=stray)
        assert requests.delete(f"{server.url}/v2/doomed/manifests/{doomed.digest}").status_code == 202
    finally:
        server.stop()
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    gc = [os.sys.executable, "-m", "dockyard.registry.server", "gc", "--root", str(root)]
    out = subprocess.run(gc, capture_output=True, text=True, env=env, check=True).stdout
    assert "removed 0 blobs" in out and "younger than" in out  # the grace period protects fresh blobs
    out = subprocess.run(gc + ["--grace", "0"], capture_output=True, text=True, env=env, check=True).stdout
    assert "removed 4 blobs" in out, out  # the stray blob, doomed's manifest, config and layer
    present = set(os.listdir(root / "blobs" / "sha256"))
    assert sha256(stray)[7:] not in present
    assert {d[7:] for d in (keep.digest, sha256(keep.config), sha256(keep.layers[0]))} <= present
    server = start_dockyard_registry(root)
    try:
        skopeo("copy", "--src-tls-verify=false", f"docker://{server.host}/keep:1", f"oci:{tmp_path / 'back'}:1")
        assert requests.head(f"{server.url}/v2/keep/blobs/{sha256(stray)}").status_code == 404
    finally:
        server.stop()


def test_gc_delete_untagged(tmp_path: Path, make_layout) -> None:
    from dockyard.registry.server.storage import Storage

    root = tmp_path / "reg"
    server = start_dockyard_registry(root)
    one, two = make_layout([layer_from_bytes("1", b"one")]), make_layout([layer_from_bytes("2", b"two")])
    try:
        skopeo("copy", "--dest-tls-verify=false", one.ref, f"docker://{server.host}/app:latest")
        skopeo("copy", "--dest-tls-verify=false", two.ref, f"docker://{server.host}/app:latest")  # retags
    finally:
        server.stop()
    report = Storage(root).collect_garbage(grace=0, delete_untagged=True)
    assert report.manifests_removed == 1
    present = set(os.listdir(root / "blobs" / "sha256"))
    assert one.digest[7:] not in present and two.digest[7:] in present


def test_tls(tmp_path: Path, busybox_image) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    server = start_dockyard_registry(tmp_path / "reg", "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert server.url.startswith("https://")
        assert requests.get(f"{server.url}/v2/", verify=str(cert)).status_code == 200
        skopeo("copy", "--dest-cert-dir", str(tmp_path / "nocerts"), "--dest-tls-verify=false",
               busybox_image.ref, f"docker://{server.host}/tls/busybox:1")
    finally:
        server.stop()


def test_twenty_concurrent_pulls(registry: Server, make_layout, tmp_path: Path) -> None:
    payload = os.urandom(8 << 20)
    image = make_layout([busybox_layer(), gzip.compress(payload, compresslevel=1)])
    skopeo("copy", "--dest-tls-verify=false", image.ref, f"docker://{registry.host}/many:1")
    errors: list[str] = []

    def pull(i: int) -> None:
        proc = skopeo("copy", "--src-tls-verify=false", f"docker://{registry.host}/many:1",
                      f"oci:{tmp_path / f'pull-{i}'}:1", check=False)
        if proc.returncode != 0:
            errors.append(proc.stderr)
        elif oci_manifest_digest(tmp_path / f"pull-{i}", "1") != image.digest:
            errors.append(f"pull {i}: wrong digest")

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
