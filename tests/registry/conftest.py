"""Fixtures for the registry tests: real servers (ours and distribution's) and images made from scratch."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = "/usr/bin/busybox"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed")
    return path


# --- servers ------------------------------------------------------------------------------------------------------

@dataclass
class Server:
    proc: subprocess.Popen
    root: Path
    port: int
    scheme: str = "http"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_dockyard_registry(root: Path, *args: str) -> Server:
    """`python3 -m dockyard.registry.server serve` on a free port; it prints the URL it listens on."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "dockyard.registry.server", "serve", "--addr", "127.0.0.1:0",
                             "--root", str(root), "--log-level", "warning", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        raise RuntimeError(f"registry did not start: {line!r} {proc.stderr.read() if proc.stderr else ''}")
    url = line.split()[-1]
    return Server(proc, root, int(url.rsplit(":", 1)[1]), url.split(":", 1)[0])


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_distribution(root: Path, htpasswd: Path | None = None) -> Server:
    """Debian's docker-registry (distribution 2.x) with filesystem storage in `root`."""
    need("docker-registry")
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
    auth = ""
    if htpasswd is not None:
        auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n"
    config = root / "config.yml"
    config.write_text(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root / 'data'}
  delete:
    enabled: true
http:
  addr: 127.0.0.1:{port}
{auth}""")
    proc = subprocess.Popen(["docker-registry", "serve", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    server = Server(proc, root, port)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"{server.url}/v2/", timeout=1)
            return server
        except urllib.error.HTTPError:
            return server  # 401 with auth: it is up
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError("docker-registry did not come up")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Server]:
    server = start_dockyard_registry(tmp_path / "registry")
    yield server
    server.stop()


@pytest.fixture
def distribution(tmp_path: Path) -> Iterator[Server]:
    server = start_distribution(tmp_path / "distribution")
    yield server
    server.stop()


# --- images -------------------------------------------------------------------------------------------------------

def busybox_layer() -> bytes:
    """A gzipped tar of a tiny rootfs: /bin/busybox and a few applet links."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "tmp"):
            info = tarfile.TarInfo(d)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
            tar.addfile(info)
        if os.path.exists(BUSYBOX):
            with open(BUSYBOX, "rb") as f:
                data = f.read()
        else:
            data = b"#!/bin/sh\n"
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
        for applet in ("sh", "ls", "true"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mtime = tarfile.SYMTYPE, "busybox", 0
            tar.addfile(info)
    return gzip.compress(buf.getvalue(), mtime=0)


def layer_from_bytes(name: str, content: bytes, compress: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo(name)
        info.size, info.mode, info.mtime = len(content), 0o644, 0
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(buf.getvalue(), mtime=0, compresslevel=1) if compress else buf.getvalue()


@dataclass
class OciImage:
    layout: Path
    tag: str
    manifest: bytes
    config: bytes
    layers: list[bytes]

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def ref(self) -> str:
        return f"oci:{self.layout}:{self.tag}"


def write_oci_layout(layout: Path, tag: str, layers: list[bytes], docker_types: bool = False,
                     config_extra: dict | None = None) -> OciImage:
    """An OCI image layout with one image, written by hand (what umoci or skopeo would make)."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        digest = sha256(data)
        (blobs / digest[7:]).write_bytes(data)
        return digest

    diff_ids = [sha256(gzip.decompress(layer)) for layer in layers]
    config_value = {"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                    "config": {"Cmd": ["/bin/sh"]}, "rootfs": {"type": "layers", "diff_ids": diff_ids},
                    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "test"} for _ in layers]}
    config_value.update(config_extra or {})
    config = json.dumps(config_value, sort_keys=True).encode()
    if docker_types:
        mt_manifest = "application/vnd.docker.distribution.manifest.v2+json"
        mt_config = "application/vnd.docker.container.image.v1+json"
        mt_layer = "application/vnd.docker.image.rootfs.diff.tar.gzip"
    else:
        mt_manifest = "application/vnd.oci.image.manifest.v1+json"
        mt_config = "application/vnd.oci.image.config.v1+json"
        mt_layer = "application/vnd.oci.image.layer.v1.tar+gzip"
    manifest_value = {
        "schemaVersion": 2, "mediaType": mt_manifest,
        "config": {"mediaType": mt_config, "digest": put(config), "size": len(config)},
        "layers": [{"mediaType": mt_layer, "digest": put(layer), "size": len(layer)} for layer in layers],
    }
    manifest = json.dumps(manifest_value, indent=2).encode()
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
        {"mediaType": mt_manifest, "digest": put(manifest), "size": len(manifest),
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return OciImage(layout, tag, manifest, config, layers)


def write_oci_index(layout: Path, platforms: list[tuple[OciImage, dict]], tag: str = "multi") -> str:
    """Make `layout` (holding the images' blobs) name an image index of (image, its platform) as `tag`;
    returns the index's digest."""
    entries = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": image.digest,
                "size": len(image.manifest), "platform": platform} for image, platform in platforms]
    index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": entries}).encode()
    (layout / "blobs" / "sha256" / sha256(index)[7:]).write_bytes(index)
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": sha256(index), "size": len(index),
         "annotations": {"org.opencontainers.image.ref.name": tag}}]}))
    return sha256(index)


@pytest.fixture
def busybox_image(tmp_path: Path) -> OciImage:
    return write_oci_layout(tmp_path / "busybox-oci", "latest", [busybox_layer()])


@pytest.fixture
def make_layout(tmp_path: Path) -> Callable[..., OciImage]:
    counter = iter(range(1000))

    def make(layers: list[bytes], tag: str = "latest", **kw: object) -> OciImage:
        return write_oci_layout(tmp_path / f"layout-{next(counter)}", tag, layers, **kw)  # type: ignore[arg-type]

    return make


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    need("skopeo")
    proc = subprocess.run(["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {proc.stderr}")
    return proc


def oci_manifest_digest(layout: Path, tag: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for m in index["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag:
            return m["digest"]
    raise KeyError(tag)
