"""Basic auth from an htpasswd file, and the Docker token flow against our own /token endpoint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Iterator

import pytest
import requests
from conftest import Server, sha256, skopeo, start_dockyard_registry


def write_htpasswd(path: Path, users: dict[str, str]) -> Path:
    lines = []
    for user, password in users.items():
        if shutil.which("htpasswd"):
            out = subprocess.run(["htpasswd", "-nbB", user, password], capture_output=True, text=True, check=True)
            lines.append(out.stdout.strip())
        else:
            import bcrypt

            lines.append(f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def htpasswd(tmp_path: Path) -> Path:
    return write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})


@pytest.fixture
def basic_registry(tmp_path: Path, htpasswd: Path) -> Iterator[Server]:
    server = start_dockyard_registry(tmp_path / "reg", "--htpasswd", str(htpasswd))
    yield server
    server.stop()


@pytest.fixture
def token_registry(tmp_path: Path, htpasswd: Path) -> Iterator[Server]:
    server = start_dockyard_registry(tmp_path / "reg", "--htpasswd", str(htpasswd), "--auth", "token")
    yield server
    server.stop()


def test_basic_auth(basic_registry: Server) -> None:
    url = f"{basic_registry.url}/v2/"
    r = requests.get(url)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    r = requests.get(url, auth=("alice", "wrong"))
    assert r.status_code == 401 and "WWW-Authenticate" in r.headers
    r = requests.get(url, auth=("mallory", "wonderland"))
    assert r.status_code == 401
    assert requests.get(url, auth=("alice", "wonderland")).status_code == 200
    data = b"secret layer"
    r = requests.post(f"{basic_registry.url}/v2/x/blobs/uploads/", params={"digest": sha256(data)}, data=data)
    assert r.status_code == 401
    r = requests.post(f"{basic_registry.url}/v2/x/blobs/uploads/", params={"digest": sha256(data)}, data=data,
                      auth=("bob", "builder"))
    assert r.status_code == 201


def parse_challenge(header: str) -> dict[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer"
    out = {}
    for part in rest.split('",'):
        key, _, value = part.partition("=")
        out[key.strip()] = value.strip().strip('"')
    return out


def test_token_flow(token_registry: Server) -> None:
    base = token_registry.url
    r = requests.get(f"{base}/v2/")
    assert r.status_code == 401
    challenge = parse_challenge(r.headers["WWW-Authenticate"])
    assert challenge["realm"] == f"{base}/token"
    assert challenge["service"] == "dockyard-registry"
    # The challenge of a repository request names the scope it needs.
    r = requests.get(f"{base}/v2/team/app/tags/list")
    challenge = parse_challenge(r.headers["WWW-Authenticate"])
    assert challenge["scope"] == "repository:team/app:pull"
    # A wrong password at the token endpoint: 401.
    r = requests.get(challenge["realm"], params={"service": challenge["service"], "scope": challenge["scope"]},
                     auth=("alice", "nope"))
    assert r.status_code == 401
    # Anonymous: a token, but without the access asked for.
    anon = requests.get(challenge["realm"], params={"service": challenge["service"],
                                                    "scope": "repository:team/app:pull"}).json()["token"]
    r = requests.get(f"{base}/v2/team/app/tags/list", headers={"Authorization": f"Bearer {anon}"})
    assert r.status_code == 401
    assert parse_challenge(r.headers["WWW-Authenticate"])["error"] == "insufficient_scope"
    # Alice asks for pull and push on team/app.
    r = requests.get(challenge["realm"], auth=("alice", "wonderland"),
                     params={"service": challenge["service"], "scope": "repository:team/app:pull,push"})
    assert r.status_code == 200
    body = r.json()
    token = body["token"]
    assert body["access_token"] == token and body["expires_in"] > 0
    headers = {"Authorization": f"Bearer {token}"}
    data = b"layer"
    r = requests.post(f"{base}/v2/team/app/blobs/uploads/", params={"digest": sha256(data)}, data=data,
                      headers=headers)
    assert r.status_code == 201
    assert requests.head(f"{base}/v2/team/app/blobs/{sha256(data)}", headers=headers).status_code == 200
    # The token is for team/app only.
    r = requests.head(f"{base}/v2/team/other/blobs/{sha256(data)}", headers=headers)
    assert r.status_code == 401
    # A forged or tampered token is refused.
    r = requests.get(f"{base}/v2/", headers={"Authorization": f"Bearer {token[:-2]}xx"})
    assert r.status_code == 401
    # The catalog needs its own scope.
    r = requests.get(f"{base}/v2/_catalog", headers=headers)
    assert r.status_code == 401
    assert parse_challenge(r.headers["WWW-Authenticate"])["scope"] == "registry:catalog:*"
    # OAuth2 password grant (POST), as some clients use.
    r = requests.post(challenge["realm"], data={"grant_type": "password", "username": "bob", "password": "builder",
                                                "service": "dockyard-registry", "scope": "registry:catalog:*"})
    assert r.status_code == 200
    r = requests.get(f"{base}/v2/_catalog", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
    assert r.status_code == 200 and r.json() == {"repositories": ["team/app"]}


def test_skopeo_with_token_auth(token_registry: Server, busybox_image, tmp_path: Path) -> None:
    dest = f"docker://{token_registry.host}/secure/busybox:1"
    proc = skopeo("copy", "--dest-tls-verify=false", busybox_image.ref, dest, check=False)
    assert proc.returncode != 0
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland", busybox_image.ref, dest)
    skopeo("copy", "--src-tls-verify=false", "--src-creds", "bob:builder", dest, f"oci:{tmp_path / 'back'}:1")


def test_skopeo_with_basic_auth(basic_registry: Server, busybox_image, tmp_path: Path) -> None:
    dest = f"docker://{basic_registry.host}/secure/busybox:1"
    proc = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:bad", busybox_image.ref, dest,
                  check=False)
    assert proc.returncode != 0
    skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland", busybox_image.ref, dest)
