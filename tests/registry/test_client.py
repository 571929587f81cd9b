"""`dockyard pull/push/login/logout` against our server and Debian's docker-registry, checked with skopeo."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
import requests
from conftest import (
    REPO_ROOT,
    OciImage,
    Server,
    busybox_layer,
    layer_from_bytes,
    sha256,
    skopeo,
    start_distribution,
    start_dockyard_registry,
    write_oci_index,
    write_oci_layout,
)
from test_server_auth import write_htpasswd


class Dockyard:
    """The dockyard CLI as a user runs it, with its own state root and Docker config directory."""

    def __init__(self, root: Path, docker_config: Path) -> None:
        self.root = root
        self.env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), DOCKER_CONFIG=str(docker_config))
        self.env.pop("DOCKYARD_INSECURE_REGISTRIES", None)
        self.docker_config = docker_config

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "dockyard", "--root", str(self.root), *args], env=self.env,
                              capture_output=True, text=True, input=input, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"dockyard {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def image_id(self, name: str) -> str:
        proc = self.run("image", "inspect", "--format", "{{.Id}}", name, check=False)
        return proc.stdout.strip() if proc.returncode == 0 else ""


@pytest.fixture
def dockyard(tmp_path: Path) -> Dockyard:
    return Dockyard(tmp_path / "dockyard", tmp_path / "docker-config")


def seed_busybox(dockyard: Dockyard, name: str) -> str:
    dockyard.run("image", "bootstrap", "busybox")
    dockyard.run("tag", "busybox:latest", name)
    return dockyard.image_id(name)


@pytest.fixture(params=["dockyard", "distribution"])
def any_registry(request, tmp_path: Path) -> Iterator[Server]:
    if request.param == "dockyard":
        server = start_dockyard_registry(tmp_path / "reg")
    else:
        server = start_distribution(tmp_path / "dist")
    yield server
    server.stop()


def test_push_then_skopeo_pulls_identical_digest(dockyard: Dockyard, any_registry: Server, tmp_path: Path) -> None:
    name = f"{any_registry.host}/team/busybox:v1"
    image_id = seed_busybox(dockyard, name)
    out = dockyard.run("push", name).stdout
    assert f"The push refers to repository [{any_registry.host}/team/busybox]" in out
    digest = out.strip().splitlines()[-1].split("digest: ")[1].split()[0]
    assert ": Pushed" in out
    # `dir:` keeps the manifest's bytes (an `oci:` copy would compress the uncompressed layer on the way).
    skopeo("copy", "--src-tls-verify=false", f"docker://{name}", f"dir:{tmp_path / 'back'}")
    assert sha256((tmp_path / "back" / "manifest.json").read_bytes()) == digest
    raw_config = skopeo("inspect", "--raw", "--config", "--tls-verify=false", f"docker://{name}").stdout.encode()
    assert sha256(raw_config) == image_id
    # The repo digest is recorded locally, as docker does after a push.
    assert digest in dockyard.run("images", "--digests").stdout
    # Pushing again: every blob is already there.
    out = dockyard.run("push", name).stdout
    assert "Layer already exists" in out and ": Pushed" not in out


def test_skopeo_push_then_dockyard_pull(dockyard: Dockyard, any_registry: Server, make_layout) -> None:
    image = make_layout([busybox_layer(), layer_from_bytes("etc/data", os.urandom(50_000))])
    name = f"{any_registry.host}/from/skopeo:1.0"
    skopeo("copy", "--dest-tls-verify=false", image.ref, f"docker://{name}")
    out = dockyard.run("pull", name).stdout
    assert out.strip().splitlines()[-1] == name
    assert f"Digest: {image.digest}" in out
    assert "Status: Downloaded newer image for" in out
    assert dockyard.image_id(name) == sha256(image.config)
    out = dockyard.run("pull", name).stdout
    assert "Image is up to date" in out
    # By digest: no tag, a repo digest.
    dockyard.run("rmi", name)
    out = dockyard.run("pull", f"{any_registry.host}/from/skopeo@{image.digest}").stdout
    assert dockyard.image_id(f"{any_registry.host}/from/skopeo@{image.digest}") == sha256(image.config)


def test_pull_quiet_and_unknown_tag(dockyard: Dockyard, registry: Server, busybox_image: OciImage) -> None:
    skopeo("copy", "--dest-tls-verify=false", busybox_image.ref, f"docker://{registry.host}/q/busybox:1")
    proc = dockyard.run("pull", "-q", f"{registry.host}/q/busybox:1")
    assert proc.stdout == f"{registry.host}/q/busybox:1\n"
    proc = dockyard.run("pull", f"{registry.host}/q/busybox:nosuch", check=False)
    assert proc.returncode != 0
    assert "manifest unknown" in proc.stderr
    proc = dockyard.run("pull", "127.0.0.1:1/nothing:here", check=False)
    assert proc.returncode != 0 and "127.0.0.1:1" in proc.stderr


def test_pull_platform_from_index(dockyard: Dockyard, registry: Server, tmp_path: Path) -> None:
    images = {}
    layout = tmp_path / "multi"
    for arch in ("amd64", "arm64"):
        images[arch] = write_oci_layout(layout, arch, [layer_from_bytes("arch", arch.encode())],
                                        config_extra={"architecture": arch})
    platforms = [(img, {"os": "linux", "architecture": arch, **({"variant": "v8"} if arch == "arm64" else {})})
                 for arch, img in images.items()]
    index_digest = write_oci_index(layout, platforms)
    name = f"{registry.host}/multi/arch:latest"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{name}")
    out = dockyard.run("pull", "--platform", "linux/arm64", name).stdout
    assert f"Digest: {index_digest}" in out  # the index digest, as docker reports it
    assert dockyard.image_id(name) == sha256(images["arm64"].config)
    dockyard.run("pull", "--platform", "linux/amd64", name)
    assert dockyard.image_id(name) == sha256(images["amd64"].config)
    proc = dockyard.run("pull", "--platform", "linux/s390x", name, check=False)
    assert proc.returncode != 0 and "no matching manifest for linux/s390x" in proc.stderr


def test_all_tags_and_cross_repository_mount(dockyard: Dockyard, registry: Server) -> None:
    seed_busybox(dockyard, f"{registry.host}/src/bb:one")
    dockyard.run("tag", "busybox", f"{registry.host}/src/bb:two")
    out = dockyard.run("push", "-a", f"{registry.host}/src/bb").stdout
    assert "one: digest:" in out and "two: digest:" in out
    tags = requests.get(f"{registry.url}/v2/src/bb/tags/list").json()["tags"]
    assert tags == ["one", "two"]
    # Another repository of the same registry: the layer is mounted, not uploaded again.
    dockyard.run("tag", "busybox", f"{registry.host}/dst/bb:x")
    out = dockyard.run("push", f"{registry.host}/dst/bb:x").stdout
    assert "Mounted from src/bb" in out, out
    # pull -a
    for tag in ("one", "two", "x"):
        dockyard.run("rmi", "-f", f"{registry.host}/src/bb:{tag}", check=False)
    out = dockyard.run("pull", "-a", f"{registry.host}/src/bb").stdout
    assert "one: Pulling from src/bb" in out and "two: Pulling from src/bb" in out
    assert dockyard.image_id(f"{registry.host}/src/bb:two")


def test_login_logout_htpasswd_distribution(dockyard: Dockyard, tmp_path: Path, make_layout) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"carol": "s3cret"})
    server = start_distribution(tmp_path / "dist", htpasswd)
    try:
        proc = dockyard.run("login", "-u", "carol", "--password-stdin", server.host, input="wrong\n", check=False)
        assert proc.returncode != 0 and "unauthorized" in proc.stderr.lower()
        assert not (dockyard.docker_config / "config.json").exists()
        proc = dockyard.run("login", "-u", "carol", "--password-stdin", server.host, input="s3cret\n")
        assert "Login Succeeded" in proc.stdout
        config = json.loads((dockyard.docker_config / "config.json").read_text())
        assert base64.b64decode(config["auths"][server.host]["auth"]).decode() == "carol:s3cret"
        name = f"{server.host}/private/bb:1"
        seed_busybox(dockyard, name)
        dockyard.run("push", name)
        dockyard.run("rmi", name)
        dockyard.run("pull", name)
        out = dockyard.run("logout", server.host).stdout
        assert f"Removing login credentials for {server.host}" in out
        assert json.loads((dockyard.docker_config / "config.json").read_text())["auths"] == {}
        proc = dockyard.run("push", name, check=False)
        assert proc.returncode != 0
    finally:
        server.stop()


def test_login_and_push_with_token_server(dockyard: Dockyard, tmp_path: Path) -> None:
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"dave": "pw"})
    server = start_dockyard_registry(tmp_path / "reg", "--htpasswd", str(htpasswd), "--auth", "token")
    try:
        proc = dockyard.run("login", "-u", "dave", "-p", "bad", server.host, check=False)
        assert proc.returncode != 0
        proc = dockyard.run("login", "-u", "dave", "-p", "pw", server.host)
        assert "Login Succeeded" in proc.stdout and "insecure" in proc.stderr
        name = f"{server.host}/tok/bb:1"
        seed_busybox(dockyard, name)
        dockyard.run("push", name)
        dockyard.run("tag", name, f"{server.host}/tok/other:1")
        assert "Mounted from tok/bb" in dockyard.run("push", f"{server.host}/tok/other:1").stdout
        dockyard.run("rmi", "-f", "busybox")
        dockyard.run("rmi", "-f", name)
        dockyard.run("pull", name)
        skopeo("copy", "--src-tls-verify=false", "--src-creds", "dave:pw", f"docker://{name}",
               f"oci:{tmp_path / 'back'}:1")
    finally:
        server.stop()


def test_pull_docker_schema2_and_manifest_list(dockyard: Dockyard, registry: Server, tmp_path: Path) -> None:
    images = {}
    layout = tmp_path / "multi"
    for arch in ("amd64", "arm64"):
        images[arch] = write_oci_layout(layout, arch, [layer_from_bytes("arch", arch.encode())],
                                        config_extra={"architecture": arch})
    write_oci_index(layout, [(img, {"os": "linux", "architecture": arch}) for arch, img in images.items()])
    name = f"{registry.host}/docker/list:latest"
    skopeo("copy", "--all", "--format", "v2s2", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{name}")
    r = requests.head(f"{registry.url}/v2/docker/list/manifests/latest", headers={"Accept": "*/*"})
    assert r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    out = dockyard.run("pull", "--platform", "linux/arm64", name).stdout
    assert f"Digest: {r.headers['Docker-Content-Digest']}" in out
    assert dockyard.image_id(name) == sha256(images["arm64"].config)
    # The image pushed back keeps its schema 2 manifest, byte for byte.
    dockyard.run("tag", name, f"{registry.host}/docker/again:arm")
    pushed = dockyard.run("push", f"{registry.host}/docker/again:arm").stdout
    r = requests.get(f"{registry.url}/v2/docker/again/manifests/arm", headers={"Accept": "*/*"})
    assert r.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert f"digest: {r.headers['Docker-Content-Digest']}" in pushed
