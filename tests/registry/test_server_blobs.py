"""Blob endpoints of `dockyard registry serve`, over real HTTP against a real server process."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import requests
from conftest import Server, sha256

NAME = "team/app"


def blobs_on_disk(server: Server) -> list[str]:
    return sorted(os.listdir(server.root / "blobs" / "sha256"))


def upload(server: Server, data: bytes, name: str = NAME) -> str:
    digest = sha256(data)
    r = requests.post(f"{server.url}/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data)
    assert r.status_code == 201, r.text
    return digest


def test_base_endpoint(registry: Server) -> None:
    r = requests.get(f"{registry.url}/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.json() == {}


def test_single_post_upload_then_head_get_range(registry: Server) -> None:
    data = b"hello, registry\n" * 100
    digest = sha256(data)
    r = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/", params={"digest": digest}, data=data)
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/{NAME}/blobs/{digest}"
    assert r.headers["Docker-Content-Digest"] == digest
    r = requests.head(f"{registry.url}/v2/{NAME}/blobs/{digest}")
    assert r.status_code == 200
    assert r.headers["Content-Length"] == str(len(data))
    assert r.headers["Docker-Content-Digest"] == digest
    r = requests.get(f"{registry.url}/v2/{NAME}/blobs/{digest}")
    assert r.content == data
    r = requests.get(f"{registry.url}/v2/{NAME}/blobs/{digest}", headers={"Range": "bytes=10-19"})
    assert r.status_code == 206
    assert r.content == data[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    r = requests.get(f"{registry.url}/v2/{NAME}/blobs/{digest}", headers={"Range": "bytes=1500-"})
    assert r.content == data[1500:]


def test_post_then_put(registry: Server) -> None:
    data = os.urandom(100_000)
    r = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/")
    assert r.status_code == 202
    location = r.headers["Location"]
    assert r.headers["Docker-Upload-UUID"] in location
    r = requests.put(f"{registry.url}{location}", params={"digest": sha256(data)}, data=data,
                     headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text
    assert requests.get(f"{registry.url}/v2/{NAME}/blobs/{sha256(data)}").content == data


def test_chunked_patch_in_order_status_and_out_of_order(registry: Server) -> None:
    data = os.urandom(300_000)
    r = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/", headers={"Content-Length": "0"})
    location = r.headers["Location"]
    offset = 0
    for size in (100_000, 150_000):
        chunk = data[offset:offset + size]
        r = requests.patch(f"{registry.url}{location}", data=chunk, headers={
            "Content-Range": f"{offset}-{offset + size - 1}", "Content-Type": "application/octet-stream"})
        assert r.status_code == 202, r.text
        offset += size
        assert r.headers["Range"] == f"0-{offset - 1}"
        location = r.headers["Location"]
    r = requests.get(f"{registry.url}{location}")
    assert r.status_code == 204
    assert r.headers["Range"] == f"0-{offset - 1}"
    # A chunk that does not start where the upload stands: 416 and the current range.
    r = requests.patch(f"{registry.url}{location}", data=b"x" * 10, headers={"Content-Range": "10-19"})
    assert r.status_code == 416
    assert r.headers["Range"] == f"0-{offset - 1}"
    # A chunk whose body is shorter than its Content-Range: rejected and rolled back.
    r = requests.patch(f"{registry.url}{location}", data=b"x" * 10,
                       headers={"Content-Range": f"{offset}-{offset + 99}"})
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "SIZE_INVALID"
    assert requests.get(f"{registry.url}{location}").headers["Range"] == f"0-{offset - 1}"
    # The final chunk comes with the closing PUT.
    r = requests.put(f"{registry.url}{location}", params={"digest": sha256(data)}, data=data[offset:],
                     headers={"Content-Range": f"{offset}-{len(data) - 1}"})
    assert r.status_code == 201, r.text
    assert requests.get(f"{registry.url}/v2/{NAME}/blobs/{sha256(data)}").content == data


def test_streamed_patch_with_chunked_transfer_encoding(registry: Server) -> None:
    """What skopeo and containerd send: one PATCH, no Content-Range, a chunked body."""
    parts = [os.urandom(65536) for _ in range(20)]
    data = b"".join(parts)
    location = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/").headers["Location"]
    r = requests.patch(f"{registry.url}{location}", data=iter(parts))
    assert r.status_code == 202
    assert r.headers["Range"] == f"0-{len(data) - 1}"
    r = requests.put(f"{registry.url}{r.headers['Location']}", params={"digest": sha256(data)})
    assert r.status_code == 201
    assert requests.get(f"{registry.url}/v2/{NAME}/blobs/{sha256(data)}").content == data


def test_cancel_upload(registry: Server) -> None:
    location = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/").headers["Location"]
    requests.patch(f"{registry.url}{location}", data=b"abc")
    assert requests.delete(f"{registry.url}{location}").status_code == 204
    r = requests.get(f"{registry.url}{location}")
    assert r.status_code == 404
    assert r.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    assert os.listdir(registry.root / "uploads") == []


def test_digest_mismatch_stores_nothing(registry: Server) -> None:
    data = b"the real content"
    wrong = sha256(b"something else")
    r = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/", params={"digest": wrong}, data=data)
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    location = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/").headers["Location"]
    r = requests.put(f"{registry.url}{location}", params={"digest": wrong}, data=data)
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert blobs_on_disk(registry) == []
    assert os.listdir(registry.root / "uploads") == []
    for digest in (wrong, sha256(data)):
        assert requests.head(f"{registry.url}/v2/{NAME}/blobs/{digest}").status_code == 404


def test_invalid_and_unsupported_digests(registry: Server) -> None:
    r = requests.get(f"{registry.url}/v2/{NAME}/blobs/sha256:1234")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    r = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/", params={"digest": "sha512:" + "a" * 128},
                      data=b"x")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    location = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/").headers["Location"]
    r = requests.put(f"{registry.url}{location}", data=b"x")  # no ?digest=
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "DIGEST_INVALID"


def test_blobs_stored_once_and_seen_only_where_given(registry: Server) -> None:
    data = os.urandom(5000)
    digest = upload(registry, data, "one")
    assert requests.head(f"{registry.url}/v2/two/blobs/{digest}").status_code == 404
    upload(registry, data, "three")
    assert blobs_on_disk(registry) == [digest[7:]]
    # Mount from a repository that lacks the blob: an ordinary upload session instead.
    r = requests.post(f"{registry.url}/v2/two/blobs/uploads/", params={"mount": digest, "from": "four"})
    assert r.status_code == 202 and "/blobs/uploads/" in r.headers["Location"]
    r = requests.post(f"{registry.url}/v2/two/blobs/uploads/", params={"mount": digest, "from": "one"})
    assert r.status_code == 201
    assert r.headers["Location"] == f"/v2/two/blobs/{digest}"
    assert requests.get(f"{registry.url}/v2/two/blobs/{digest}").content == data
    assert blobs_on_disk(registry) == [digest[7:]]


def test_delete_blob(registry: Server) -> None:
    digest = upload(registry, b"to delete")
    assert requests.delete(f"{registry.url}/v2/{NAME}/blobs/{digest}").status_code == 202
    assert requests.head(f"{registry.url}/v2/{NAME}/blobs/{digest}").status_code == 404
    r = requests.delete(f"{registry.url}/v2/{NAME}/blobs/{digest}")
    assert r.status_code == 404 and r.json()["errors"][0]["code"] == "BLOB_UNKNOWN"


def test_invalid_names(registry: Server) -> None:
    digest = sha256(b"")
    for name in ("UPPER/case", "a//b", "-leading", "a/_hidden", "a/../b", "x" * 256):
        r = requests.get(f"{registry.url}/v2/{name}/blobs/{digest}")
        assert r.status_code in (400, 404), name
        if r.status_code == 400:
            assert r.json()["errors"][0]["code"] == "NAME_INVALID", name
    r = requests.post(f"{registry.url}/v2/Bad/blobs/uploads/")
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "NAME_INVALID"


def test_upload_resumes_after_server_restart(tmp_path: Path) -> None:
    from conftest import start_dockyard_registry

    data = os.urandom(200_000)
    server = start_dockyard_registry(tmp_path / "reg")
    try:
        location = requests.post(f"{server.url}/v2/{NAME}/blobs/uploads/").headers["Location"]
        requests.patch(f"{server.url}{location}", data=data[:120_000], headers={"Content-Range": "0-119999"})
    finally:
        server.stop()
    server = start_dockyard_registry(tmp_path / "reg")
    try:
        r = requests.get(f"{server.url}{location}")
        assert r.status_code == 204 and r.headers["Range"] == "0-119999"
        r = requests.put(f"{server.url}{location}", params={"digest": sha256(data)}, data=data[120_000:],
                         headers={"Content-Range": f"120000-{len(data) - 1}"})
        assert r.status_code == 201
        assert requests.get(f"{server.url}/v2/{NAME}/blobs/{sha256(data)}").content == data
    finally:
        server.stop()


# --- HTTP hygiene ---------------------------------------------------------------------------------------------------

def raw_request(server: Server, request: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks):
                    break
        except socket.timeout:
            pass
    return b"".join(chunks)


def test_conflicting_content_length_rejected(registry: Server) -> None:
    digest = sha256(b"abcd")
    response = raw_request(registry, (
        f"POST /v2/{NAME}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 4\r\nContent-Length: 6\r\n\r\nabcdef").encode())
    assert response.split(b" ")[1] == b"400", response[:100]
    response = raw_request(registry, (
        f"POST /v2/{NAME}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
        "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n").encode())
    assert response.split(b" ")[1] == b"400", response[:100]
    assert blobs_on_disk(registry) == []


def test_chunked_request_body_decoded(registry: Server) -> None:
    digest = sha256(b"abcdefgh")
    response = raw_request(registry, (
        f"POST /v2/{NAME}/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
        "Transfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n").encode())
    assert response.startswith(b"HTTP/1.1 201"), response[:200]


def test_oversized_header_rejected(registry: Server) -> None:
    response = raw_request(registry, (
        "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: " + "a" * 100_000 + "\r\n\r\n").encode())
    assert response.split(b" ")[1] in (b"400", b"413", b"431"), response[:100]


def test_slow_client_does_not_block_others(registry: Server) -> None:
    location = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/").headers["Location"]
    slow = socket.create_connection(("127.0.0.1", registry.port))
    try:
        slow.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n".encode())
        slow.sendall(b"x" * 1000)  # ... and then nothing for a while
        started = time.monotonic()
        for _ in range(20):
            assert requests.get(f"{registry.url}/v2/").status_code == 200
        half = socket.create_connection(("127.0.0.1", registry.port))
        half.sendall(b"GET /v2/ HTTP/1.1\r\nHost:")  # headers never finished
        assert requests.get(f"{registry.url}/v2/").status_code == 200
        half.close()
        assert time.monotonic() - started < 5
    finally:
        slow.close()


def process_rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_200mb_upload_keeps_memory_low(registry: Server) -> None:
    block = os.urandom(1 << 20)
    count = 200
    import hashlib

    h = hashlib.sha256()
    for _ in range(count):
        h.update(block)
    digest = "sha256:" + h.hexdigest()
    requests.get(f"{registry.url}/v2/")
    before = process_rss_peak_kib(registry.proc.pid)
    location = requests.post(f"{registry.url}/v2/{NAME}/blobs/uploads/").headers["Location"]
    r = requests.patch(f"{registry.url}{location}", data=(block for _ in range(count)))
    assert r.status_code == 202
    r = requests.put(f"{registry.url}{r.headers['Location']}", params={"digest": digest})
    assert r.status_code == 201
    grown_mib = (process_rss_peak_kib(registry.proc.pid) - before) / 1024
    assert grown_mib < 40, f"peak RSS grew by {grown_mib:.0f} MiB during a 200 MiB upload"
    r = requests.head(f"{registry.url}/v2/{NAME}/blobs/{digest}")
    assert r.headers["Content-Length"] == str(count << 20)


def test_range_variants_and_conditional_get(registry: Server) -> None:
    data = bytes(range(256)) * 40
    digest = upload(registry, data)
    url = f"{registry.url}/v2/{NAME}/blobs/{digest}"
    r = requests.get(url, headers={"Range": "bytes=-100"})
    assert r.status_code == 206 and r.content == data[-100:]
    r = requests.get(url, headers={"Range": f"bytes=100-{len(data) + 500}"})
    assert r.status_code == 206 and r.content == data[100:]
    r = requests.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
    r = requests.get(url, headers={"Range": "bytes=0-1,5-6"})  # several ranges: the whole blob
    assert r.status_code == 200 and r.content == data
    r = requests.head(url, headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.headers["Content-Length"] == "10"
    etag = requests.head(url).headers["ETag"]
    assert requests.get(url, headers={"If-None-Match": etag}).status_code == 304


def test_in_process_server_thread(tmp_path: Path) -> None:
    from dockyard.registry.server.app import ServerConfig, ServerThread

    with ServerThread(ServerConfig(root=tmp_path / "reg", port=0)) as server:
        assert server.port != 0
        data = b"in-process"
        r = requests.post(f"{server.url}/v2/inproc/blobs/uploads/", params={"digest": sha256(data)}, data=data)
        assert r.status_code == 201
        assert requests.get(f"{server.url}/v2/inproc/blobs/{sha256(data)}").content == data
