"""Manifests, tags, catalog and referrers of `dockyard registry serve`."""

from __future__ import annotations

import json

import requests
from conftest import Server, sha256

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
EMPTY = "application/vnd.oci.empty.v1+json"


def put_blob(server: Server, name: str, data: bytes) -> dict:
    r = requests.post(f"{server.url}/v2/{name}/blobs/uploads/", params={"digest": sha256(data)}, data=data)
    assert r.status_code == 201, r.text
    return {"digest": sha256(data), "size": len(data)}


def image_manifest(server: Server, name: str, seed: str, media_type: str = OCI_MANIFEST,
                   **extra: object) -> bytes:
    docker = media_type == DOCKER_MANIFEST
    config = put_blob(server, name, json.dumps({"seed": seed, "rootfs": {"type": "layers", "diff_ids": []}})
                      .encode())
    layer = put_blob(server, name, f"layer {seed}".encode())
    value = {
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json" if docker else OCI_CONFIG,
                   **config},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip" if docker
                    else "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        **extra,
    }
    return json.dumps(value, indent=3).encode()


def put_manifest(server: Server, name: str, reference: str, raw: bytes, media_type: str = OCI_MANIFEST,
                 **kw: object) -> requests.Response:
    return requests.put(f"{server.url}/v2/{name}/manifests/{reference}", data=raw,
                        headers={"Content-Type": media_type}, **kw)


def error_codes(r: requests.Response) -> list[str]:
    return [e["code"] for e in r.json()["errors"]]


def test_manifest_by_tag_and_digest(registry: Server) -> None:
    for media_type in (OCI_MANIFEST, DOCKER_MANIFEST):
        raw = image_manifest(registry, "app", media_type, media_type)
        r = put_manifest(registry, "app", "v1", raw, media_type)
        assert r.status_code == 201, r.text
        digest = sha256(raw)
        assert r.headers["Docker-Content-Digest"] == digest
        assert r.headers["Location"] == f"/v2/app/manifests/{digest}"
        for reference in ("v1", digest):
            r = requests.get(f"{registry.url}/v2/app/manifests/{reference}", headers={"Accept": media_type})
            assert r.status_code == 200
            assert r.content == raw  # byte for byte what was pushed
            assert r.headers["Content-Type"] == media_type
            assert r.headers["Docker-Content-Digest"] == digest
            r = requests.head(f"{registry.url}/v2/app/manifests/{reference}", headers={"Accept": media_type})
            assert r.status_code == 200
            assert r.headers["Content-Length"] == str(len(raw))
            assert r.headers["Docker-Content-Digest"] == digest


def test_push_by_digest_with_tags(registry: Server) -> None:
    raw = image_manifest(registry, "app", "x")
    r = put_manifest(registry, "app", sha256(raw), raw, params=[("tag", "a"), ("tag", "b")])
    assert r.status_code == 201
    assert sorted(t.strip() for h in r.raw.headers.getlist("OCI-Tag") for t in h.split(",")) == ["a", "b"]
    assert requests.get(f"{registry.url}/v2/app/tags/list").json()["tags"] == ["a", "b"]
    r = put_manifest(registry, "app", sha256(b"other"), raw)
    assert r.status_code == 400 and error_codes(r) == ["DIGEST_INVALID"]


def test_index_and_accept_negotiation(registry: Server) -> None:
    children = []
    for arch in ("amd64", "arm64"):
        raw = image_manifest(registry, "multi", arch)
        assert put_manifest(registry, "multi", sha256(raw), raw).status_code == 201
        children.append({"mediaType": OCI_MANIFEST, "digest": sha256(raw), "size": len(raw),
                         "platform": {"os": "linux", "architecture": arch}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode()
    r = put_manifest(registry, "multi", "latest", index, OCI_INDEX)
    assert r.status_code == 201, r.text
    r = requests.get(f"{registry.url}/v2/multi/manifests/latest", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
    assert r.status_code == 200 and r.headers["Content-Type"] == OCI_INDEX
    # A client that lists manifest types but not this one does not get it (as with distribution).
    r = requests.get(f"{registry.url}/v2/multi/manifests/latest", headers={"Accept": DOCKER_MANIFEST})
    assert r.status_code == 404 and error_codes(r) == ["MANIFEST_UNKNOWN"]
    r = requests.get(f"{registry.url}/v2/multi/manifests/latest", headers={"Accept": "*/*"})
    assert r.status_code == 200
    # An index naming a manifest the repository does not have.
    missing = dict(children[0], digest=sha256(b"nope"))
    bad = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [missing]}).encode()
    r = put_manifest(registry, "multi", "bad", bad, DOCKER_LIST)
    assert r.status_code == 400 and error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]


def test_manifest_with_missing_blobs(registry: Server) -> None:
    value = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "digest": sha256(b"c"), "size": 1},
             "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(b"l"), "size": 1}]}
    r = put_manifest(registry, "app", "v1", json.dumps(value).encode())
    assert r.status_code == 400
    assert error_codes(r) == ["MANIFEST_BLOB_UNKNOWN", "MANIFEST_BLOB_UNKNOWN"]
    assert {e["detail"]["digest"] for e in r.json()["errors"]} == {sha256(b"c"), sha256(b"l")}
    # A blob in another repository does not count.
    put_blob(registry, "other", b"c")
    put_blob(registry, "app", b"l")
    r = put_manifest(registry, "app", "v1", json.dumps(value).encode())
    assert error_codes(r) == ["MANIFEST_BLOB_UNKNOWN"]
    assert requests.get(f"{registry.url}/v2/app/manifests/v1").status_code == 404


def test_invalid_manifests(registry: Server) -> None:
    for body, media_type in ((b"{not json", OCI_MANIFEST), (b"[]", OCI_MANIFEST),
                             (b'{"schemaVersion": 1, "name": "x", "fsLayers": []}', OCI_MANIFEST),
                             (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                                          "config": {"digest": "nope"}, "layers": []}).encode(), OCI_MANIFEST),
                             (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(),
                              OCI_MANIFEST)):
        r = put_manifest(registry, "app", "v1", body, media_type)
        assert r.status_code == 400, body
        assert error_codes(r) == ["MANIFEST_INVALID"], body
    r = put_manifest(registry, "app", "v1", b"{" + b" " * (5 << 20) + b"}")
    assert r.status_code == 413


def test_invalid_tag_and_name(registry: Server) -> None:
    raw = image_manifest(registry, "app", "t")
    r = put_manifest(registry, "app", "-bad", raw)
    assert r.status_code == 400 and error_codes(r) == ["TAG_INVALID"]
    r = put_manifest(registry, "app", "x" * 129, raw)
    assert r.status_code == 400 and error_codes(r) == ["TAG_INVALID"]
    r = put_manifest(registry, "App", "v1", raw)
    assert r.status_code == 400 and error_codes(r) == ["NAME_INVALID"]
    r = requests.get(f"{registry.url}/v2/nosuch/tags/list")
    assert r.status_code == 404 and error_codes(r) == ["NAME_UNKNOWN"]
    r = requests.get(f"{registry.url}/v2/app/manifests/nosuchtag")
    assert r.status_code == 404 and error_codes(r) == ["MANIFEST_UNKNOWN"]


def test_tags_pagination(registry: Server) -> None:
    raw = image_manifest(registry, "paged", "p")
    tags = ["a", "B", "c1", "c10", "c2", "latest", "v1.0", "v1.1"]
    for tag in tags:
        assert put_manifest(registry, "paged", tag, raw).status_code == 201
    url = f"{registry.url}/v2/paged/tags/list"
    assert requests.get(url).json() == {"name": "paged", "tags": sorted(tags)}
    seen: list[str] = []
    next_url = f"{url}?n=3"
    while next_url:
        r = requests.get(next_url)
        seen += r.json()["tags"]
        link = r.headers.get("Link")
        next_url = registry.url + link[1:link.index(">")] if link else ""
    assert seen == sorted(tags)
    r = requests.get(url, params={"n": 2, "last": "c10"})
    assert r.json()["tags"] == ["c2", "latest"]
    r = requests.get(url, params={"n": 0})
    assert r.json()["tags"] == [] and "Link" not in r.headers
    r = requests.get(url, params={"n": "x"})
    assert r.status_code == 400


def test_catalog(registry: Server) -> None:
    for name in ("b/two", "a", "b", "c/d/e"):
        raw = image_manifest(registry, name, name)
        assert put_manifest(registry, name, "latest", raw).status_code == 201
    r = requests.get(f"{registry.url}/v2/_catalog")
    assert r.json() == {"repositories": ["a", "b", "b/two", "c/d/e"]}
    r = requests.get(f"{registry.url}/v2/_catalog", params={"n": 2})
    assert r.json() == {"repositories": ["a", "b"]}
    assert 'rel="next"' in r.headers["Link"]


def test_delete_manifest_by_tag_and_digest(registry: Server) -> None:
    raw = image_manifest(registry, "app", "d")
    digest = sha256(raw)
    for tag in ("one", "two", "three"):
        put_manifest(registry, "app", tag, raw)
    assert requests.delete(f"{registry.url}/v2/app/manifests/one").status_code == 202
    assert requests.get(f"{registry.url}/v2/app/manifests/one").status_code == 404
    assert requests.get(f"{registry.url}/v2/app/manifests/two").status_code == 200
    assert requests.delete(f"{registry.url}/v2/app/manifests/{digest}").status_code == 202
    for reference in ("two", "three", digest):
        assert requests.get(f"{registry.url}/v2/app/manifests/{reference}").status_code == 404
    assert requests.delete(f"{registry.url}/v2/app/manifests/{digest}").status_code == 404


def test_referrers(registry: Server) -> None:
    subject_raw = image_manifest(registry, "app", "subject")
    subject = {"mediaType": OCI_MANIFEST, "digest": sha256(subject_raw), "size": len(subject_raw)}
    empty = put_blob(registry, "app", b"{}")
    # Referrers may be pushed before their subject.
    sbom = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/x.sbom",
                       "config": {"mediaType": EMPTY, **empty}, "layers": [{"mediaType": EMPTY, **empty}],
                       "subject": subject, "annotations": {"kind": "sbom"}}).encode()
    r = put_manifest(registry, "app", sha256(sbom), sbom)
    assert r.status_code == 201, r.text
    assert r.headers["OCI-Subject"] == subject["digest"]
    assert put_manifest(registry, "app", "v1", subject_raw).status_code == 201
    sig = image_manifest(registry, "app", "sig", subject=subject)  # no artifactType: config type counts
    assert put_manifest(registry, "app", sha256(sig), sig).status_code == 201
    url = f"{registry.url}/v2/app/referrers/{subject['digest']}"
    r = requests.get(url)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == OCI_INDEX
    index = r.json()
    assert index["mediaType"] == OCI_INDEX and index["schemaVersion"] == 2
    by_digest = {m["digest"]: m for m in index["manifests"]}
    assert set(by_digest) == {sha256(sbom), sha256(sig)}
    assert by_digest[sha256(sbom)]["artifactType"] == "application/x.sbom"
    assert by_digest[sha256(sbom)]["annotations"] == {"kind": "sbom"}
    assert by_digest[sha256(sig)]["artifactType"] == OCI_CONFIG
    r = requests.get(url, params={"artifactType": "application/x.sbom"})
    assert r.headers["OCI-Filters-Applied"] == "artifactType"
    assert [m["digest"] for m in r.json()["manifests"]] == [sha256(sbom)]
    # Unknown subject: an empty list, never 404. Bad digest: 400.
    r = requests.get(f"{registry.url}/v2/app/referrers/{sha256(b'none')}")
    assert r.status_code == 200 and r.json()["manifests"] == []
    assert requests.get(f"{registry.url}/v2/app/referrers/sha256:zz").status_code == 400
    # Deleting a referrer takes it off the list.
    requests.delete(f"{registry.url}/v2/app/manifests/{sha256(sbom)}")
    assert [m["digest"] for m in requests.get(url).json()["manifests"]] == [sha256(sig)]
