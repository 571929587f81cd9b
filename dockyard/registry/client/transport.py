"""One registry, as the client sees it: ping, auth, manifests, blobs in and out. Thread-safe.

Every received byte is checked: a manifest against the digest it was asked by (or the registry's
Docker-Content-Digest), a blob by the BlobWriter, which refuses more bytes than the descriptor's size and
verifies the digest before the blob becomes visible. An interrupted blob download resumes where it stopped
with a Range request (or starts over when the registry ignores Range). Uploads skip blobs the repository
already has, try cross-repository mounts, and otherwise send the blob in one streamed PUT.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode, urljoin

from dockyard.errors import CorruptContent, DockyardError, HostError, NotFound, Unauthorized
from dockyard.image.model import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Descriptor
from dockyard.registry.client.auth import Challenge, TokenCache, basic_header, fetch_token, parse_challenges
from dockyard.registry.client.credentials import Credentials
from dockyard.registry.client.hosts import api_host
from dockyard.registry.client.http import BLOCK, HttpClient, Response, TransportError
from dockyard.store.blobs import BlobWriter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_MANIFEST_BYTES = 4 << 20
MAX_RETRIES = 5

# (bytes done, bytes total) -> None
ProgressFn = Callable[[int, int], None]


class RegistryError(DockyardError):
    """An error answer of a registry, with its spec error codes."""

    def __init__(self, message: str, status: int, codes: list[str]) -> None:
        super().__init__(message)
        self.http_status = status
        self.codes = codes


class Cancelled(DockyardError):
    """Another transfer of the same operation failed, or the user interrupted it."""


def error_from(response: Response, what: str) -> DockyardError:
    """A dockyard error for a failed registry answer, worded as Docker words it."""
    codes: list[str] = []
    message = ""
    try:
        body = json.loads(response.read(64 << 10) or b"{}")
        errors = body.get("errors") or []
        codes = [e.get("code", "") for e in errors]
        message = "; ".join(f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message', '')}"
                            for e in errors)
    except (ValueError, AttributeError, TransportError):
        pass
    message = message or f"{response.status} {response.reason}"
    if response.status == 401:
        return Unauthorized(f"{what}: unauthorized: {message}")
    if response.status == 403:
        return Unauthorized(f"{what}: denied: {message}")
    if response.status == 404:
        return NotFound(f"{what}: {message}")
    return RegistryError(f"{what}: {message}", response.status, codes)


class _ProgressReader:
    """A blob file as an upload body: read in 1 MiB blocks, reporting progress, checking for cancellation."""

    def __init__(self, f: BinaryIO, size: int, progress: ProgressFn | None, cancel: threading.Event | None) -> None:
        self.f, self.size, self.progress, self.cancel = f, size, progress, cancel
        self.done = 0

    def read(self, n: int = -1) -> bytes:
        if self.cancel is not None and self.cancel.is_set():
            raise Cancelled("cancelled")
        data = self.f.read(n if n and n > 0 else BLOCK)
        self.done += len(data)
        if self.progress is not None and data:
            self.progress(self.done, self.size)
        return data


class RegistryClient:
    """A registry host on a shared HttpClient; may be used from several threads at once."""

    def __init__(self, http: HttpClient, domain: str, credentials: Credentials | None, insecure: bool,
                 tokens: TokenCache | None = None) -> None:
        self.http = http
        self.domain = domain
        self.host = api_host(domain)
        self.credentials = credentials
        self.insecure = insecure
        self.tokens = tokens or TokenCache()
        self.base: str | None = None
        self.verify = True
        self.challenge: Challenge | None = None
        self._lock = threading.Lock()

    # --- connection and auth -------------------------------------------------------------------------------

    def ping(self) -> None:
        """Find the scheme that works and the auth the registry wants (GET /v2/)."""
        with self._lock:
            if self.base is not None:
                return
            attempts = [("https", True)]
            if self.insecure:
                attempts = [("https", False), ("http", True)]
            error: Exception | None = None
            for scheme, verify in attempts:
                url = f"{scheme}://{self.host}/v2/"
                try:
                    with self.http.request("GET", url, verify=verify) as response:
                        self._learn_challenge(response)
                        response.read(64 << 10)
                except TransportError as e:
                    error = e
                    continue
                self.base, self.verify = f"{scheme}://{self.host}", verify
                return
            raise HostError(str(error))

    def _learn_challenge(self, response: Response) -> None:
        if response.status != 401:
            return
        for header in response.header_all("WWW-Authenticate"):
            for challenge in parse_challenges(header):
                if challenge.scheme in ("bearer", "basic"):
                    self.challenge = challenge
                    return

    def _authorization(self, scopes: tuple[str, ...], fresh: bool = False) -> str | None:
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return basic_header(self.credentials) if self.credentials else None
        realm, service = challenge.params.get("realm", ""), challenge.params.get("service", "")
        with self.tokens.lock:  # one token request per scope set, however many threads want it
            token = None if fresh else self.tokens.get(realm, service, scopes)
            if token is None:
                token, ttl = fetch_token(self.http, challenge, scopes, self.credentials, self.verify)
                self.tokens.put(realm, service, scopes, token, ttl)
        return f"Bearer {token}"

    def login(self) -> None:
        """Check the credentials: a token (Bearer) or /v2/ itself (Basic) must accept them."""
        self.ping()
        if self.challenge is None:
            return
        if self.challenge.scheme == "bearer":
            self._authorization((), fresh=True)
            return
        with self.http.request("GET", f"{self.base}/v2/", {"Authorization": self._authorization(()) or ""},
                               verify=self.verify) as response:
            if response.status == 401:
                raise Unauthorized(f'Get "{self.base}/v2/": unauthorized: incorrect username or password')

    def request(self, method: str, path_or_url: str, scopes: tuple[str, ...], *,
                headers: dict[str, str] | None = None, body: Callable[[], Any] | bytes | None = None) -> Response:
        """Send a request with auth; on 401, learn the new challenge, get a fresh token and retry once.

        `body` may be a callable making a fresh body, so a streamed body can be sent again on retry.
        The caller must close the response (`with`).
        """
        self.ping()
        assert self.base is not None
        url = urljoin(self.base + "/", path_or_url)
        for attempt in (0, 1):
            send_headers = dict(headers or {})
            auth = self._authorization(scopes, fresh=attempt > 0)
            if auth:
                send_headers["Authorization"] = auth
            response = self.http.request(method, url, send_headers, body() if callable(body) else body, self.verify)
            if response.status != 401 or attempt == 1:
                return response
            # The token expired, or the registry wants a scope we did not ask for (error="insufficient_scope").
            self._learn_challenge(response)
            response.close()
            if self.challenge is not None and self.challenge.scheme == "bearer":
                extra = self.challenge.params.get("scope")
                if extra and extra not in scopes:
                    scopes = scopes + tuple(extra.split())
        raise AssertionError("unreachable")

    # --- manifests -----------------------------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of a manifest or index, verified."""
        scopes = (f"repository:{repo}:pull",)
        sep = "@" if ":" in reference else ":"
        what = f"manifest for {self.domain}/{repo}{sep}{reference}"
        with self.request("GET", f"/v2/{repo}/manifests/{reference}", scopes,
                          headers={"Accept": MANIFEST_ACCEPT}) as response:
            if response.status == 404:
                raise NotFound(f"{what} not found: manifest unknown: manifest unknown")
            if response.status != 200:
                raise error_from(response, what)
            raw = response.read(MAX_MANIFEST_BYTES + 1)
            media_type = (response.header("Content-Type") or "").split(";")[0].strip()
            header_digest = response.header("Docker-Content-Digest")
        if len(raw) > MAX_MANIFEST_BYTES:
            raise CorruptContent(f"{what}: larger than {MAX_MANIFEST_BYTES} bytes")
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        expected = reference if ":" in reference else header_digest
        if expected and expected.startswith("sha256:") and expected != digest:
            raise CorruptContent(f"{what}: content has digest {digest}, expected {expected}")
        try:
            declared = json.loads(raw).get("mediaType")
        except (ValueError, AttributeError):
            raise CorruptContent(f"{what}: not valid JSON") from None
        return raw, declared or media_type, digest

    def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        scopes = (f"repository:{repo}:pull,push",)
        with self.request("PUT", f"/v2/{repo}/manifests/{reference}", scopes, body=raw,
                          headers={"Content-Type": media_type}) as response:
            if response.status not in (200, 201):
                raise error_from(response, f"pushing manifest for {self.domain}/{repo}:{reference}")
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def list_tags(self, repo: str) -> list[str]:
        scopes = (f"repository:{repo}:pull",)
        tags: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list"
        while path:
            with self.request("GET", path, scopes) as response:
                if response.status != 200:
                    raise error_from(response, f"listing tags of {self.domain}/{repo}")
                tags += json.loads(response.read(16 << 20) or b"{}").get("tags") or []
                link = response.header("Link") or ""
            path = link[link.find("<") + 1:link.find(">")] if link.startswith("<") else None
        return tags

    # --- blobs ---------------------------------------------------------------------------------------------

    def blob_size(self, repo: str, digest: str, scopes: tuple[str, ...] | None = None) -> int | None:
        """The size of a blob the repository has, or None."""
        scopes = scopes or (f"repository:{repo}:pull",)
        with self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes) as response:
            if response.status == 200:
                return int(response.header("Content-Length") or "-1")
            if response.status == 404:
                return None
            raise error_from(response, f"checking blob {digest} in {self.domain}/{repo}")

    def fetch_blob(self, repo: str, blob: Descriptor, new_writer: Callable[[], BlobWriter],
                   progress: ProgressFn | None = None, cancel: threading.Event | None = None,
                   sink: Any = None) -> str:
        """Download a blob into the blob store, resuming after interruptions; returns its verified digest.

        `sink` (optional) sees every byte too, in order: `sink.feed(data)`, `sink.restart()` when the
        download has to start over from the first byte, and `sink.complete()` once every byte is in, before
        the blob is verified.
        """
        scopes = (f"repository:{repo}:pull",)
        writer = new_writer()
        failures = 0
        try:
            while True:
                try:
                    writer = self._fetch_into(repo, blob, writer, new_writer, scopes, progress, cancel, sink)
                    break
                except TransportError as e:
                    failures += 1
                    if failures > MAX_RETRIES:
                        raise HostError(f"downloading {blob.digest} from {self.domain}/{repo} failed "
                                        f"{failures} times, last: {e}") from None
                    time.sleep(min(0.1 * 2 ** failures, 2))
            if sink is not None:
                sink.complete()
            # Verifies size and digest, fsyncs and renames into place: a wrong byte never becomes visible.
            return writer.commit()
        finally:
            if writer.digest is None:
                writer.abort()

    def _fetch_into(self, repo: str, blob: Descriptor, writer: BlobWriter, new_writer: Callable[[], BlobWriter],
                    scopes: tuple[str, ...], progress: ProgressFn | None,
                    cancel: threading.Event | None, sink: Any) -> BlobWriter:
        offset = writer.size
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self.request("GET", f"/v2/{repo}/blobs/{blob.digest}", scopes, headers=headers) as response:
            if response.status == 206 and offset:
                content_range = response.header("Content-Range") or ""
                if not content_range.startswith(f"bytes {offset}-"):
                    raise CorruptContent(f"registry answered range {content_range!r} to bytes={offset}-")
            elif response.status == 200:
                if offset:  # the registry ignores Range: start over
                    writer.abort()
                    writer = new_writer()
                    if sink is not None:
                        sink.restart()
            elif response.status == 416 and offset == blob.size:
                return writer
            else:
                raise error_from(response, f"fetching blob {blob.digest} from {self.domain}/{repo}")
            buffer = memoryview(bytearray(BLOCK))
            while True:
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
                n = response.readinto(buffer)
                if not n:
                    break
                writer.write(buffer[:n])
                if sink is not None:
                    sink.feed(buffer[:n])
                if progress is not None:
                    progress(writer.size, blob.size)
        return writer

    def push_blob(self, repo: str, blob: Descriptor, opener: Callable[[], BinaryIO],
                  mount_from: list[str] | None = None, progress: ProgressFn | None = None,
                  cancel: threading.Event | None = None) -> str:
        """Make the repository have a blob: 'exists', 'mounted' or 'pushed'."""
        push_scope = f"repository:{repo}:pull,push"
        if self.blob_size(repo, blob.digest, (push_scope,)) == blob.size:
            return "exists"
        location = None
        for source in (mount_from or [])[:3]:
            scopes = (push_scope, f"repository:{source}:pull")
            query = urlencode({"mount": blob.digest, "from": source})
            with self.request("POST", f"/v2/{repo}/blobs/uploads/?{query}", scopes) as response:
                if response.status == 201:
                    return "mounted"
                if response.status == 202:
                    location = response.header("Location")
                    break
        if location is None:
            with self.request("POST", f"/v2/{repo}/blobs/uploads/", (push_scope,)) as response:
                location = response.header("Location")
                if response.status != 202 or not location:
                    raise error_from(response, f"starting upload of {blob.digest} to {self.domain}/{repo}")
        assert self.base is not None
        url = urljoin(self.base + "/", location)
        url += ("&" if "?" in url else "?") + urlencode({"digest": blob.digest})
        files: list[BinaryIO] = []

        def body() -> _ProgressReader:
            f = opener()
            files.append(f)
            return _ProgressReader(f, blob.size, progress, cancel)

        try:
            with self.request("PUT", url, (push_scope,), body=body, headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}) as response:
                if response.status not in (201, 204):
                    raise error_from(response, f"uploading blob {blob.digest} to {self.domain}/{repo}")
        finally:
            for f in files:
                f.close()
        return "pushed"
