"""One registry, as the client sees it: ping, auth, manifests, blobs in and out.

Every received byte is checked: a manifest against the digest it was asked by (or the registry's
Docker-Content-Digest), a blob by the BlobWriter, which refuses more bytes than the descriptor's size and
verifies the digest before the blob becomes visible. An interrupted blob download resumes where it stopped
with a Range request (or starts over when the registry ignores Range). Uploads skip blobs the repository
already has, try cross-repository mounts, and otherwise send the blob in one streamed PUT.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urljoin

import aiohttp

from dockyard.errors import CorruptContent, DockyardError, HostError, NotFound, Unauthorized
from dockyard.image.model import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, Descriptor
from dockyard.registry.client.auth import Challenge, TokenCache, basic_header, fetch_token, parse_challenges
from dockyard.registry.client.credentials import Credentials
from dockyard.registry.client.hosts import api_host
from dockyard.store.blobs import BlobWriter

MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_MANIFEST_BYTES = 4 << 20
READ_CHUNK = 1 << 20
MAX_RETRIES = 5

# (bytes done, bytes total) -> None
ProgressFn = Callable[[int, int], None]


class RegistryError(DockyardError):
    """An error answer of a registry, with its spec error codes."""

    def __init__(self, message: str, status: int, codes: list[str]) -> None:
        super().__init__(message)
        self.http_status = status
        self.codes = codes


async def _error_from(response: aiohttp.ClientResponse, what: str) -> DockyardError:
    """A dockyard error for a failed registry answer, worded as Docker words it."""
    codes: list[str] = []
    message = ""
    try:
        body = json.loads((await response.content.read(64 << 10)) or b"{}")
        errors = body.get("errors") or []
        codes = [e.get("code", "") for e in errors]
        message = "; ".join(f"{e.get('code', '').lower().replace('_', ' ')}: {e.get('message', '')}"
                            for e in errors)
    except (ValueError, AttributeError, aiohttp.ClientError):
        pass
    message = message or f"{response.status} {response.reason}"
    if response.status == 401:
        return Unauthorized(f"{what}: unauthorized: {message}")
    if response.status == 403:
        return Unauthorized(f"{what}: denied: {message}")
    if response.status == 404:
        return NotFound(f"{what}: {message}")
    return RegistryError(f"{what}: {message}", response.status, codes)


def _retryable(e: BaseException) -> bool:
    return isinstance(e, (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError,
                          ConnectionError))


class RegistryClient:
    """A registry host on a shared aiohttp session. Not thread-safe; one event loop."""

    def __init__(self, session: aiohttp.ClientSession, domain: str, credentials: Credentials | None,
                 insecure: bool, tokens: TokenCache | None = None) -> None:
        self.session = session
        self.domain = domain
        self.host = api_host(domain)
        self.credentials = credentials
        self.insecure = insecure
        self.tokens = tokens or TokenCache()
        self.base: str | None = None
        self.ssl: bool | None = None            # None: verify; False: do not (insecure registries)
        self.challenge: Challenge | None = None
        self._ping_lock = asyncio.Lock()

    # --- connection and auth -------------------------------------------------------------------------------

    async def ping(self) -> None:
        """Find the scheme that works and the auth the registry wants (GET /v2/)."""
        async with self._ping_lock:
            if self.base is not None:
                return
            attempts: list[tuple[str, bool | None]] = [("https", None)]
            if self.insecure:
                attempts = [("https", False), ("http", None)]
            error: BaseException | None = None
            for scheme, ssl in attempts:
                url = f"{scheme}://{self.host}/v2/"
                try:
                    async with self.session.get(url, ssl=ssl) as response:
                        self._learn_challenge(response)
                        await response.read()
                except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                    error = e
                    continue
                self.base, self.ssl = f"{scheme}://{self.host}", ssl
                return
            raise HostError(f'Get "{attempts[-1][0]}://{self.host}/v2/": {error}')

    def _learn_challenge(self, response: aiohttp.ClientResponse) -> None:
        if response.status != 401:
            return
        for header in response.headers.getall("WWW-Authenticate", []):
            for challenge in parse_challenges(header):
                if challenge.scheme in ("bearer", "basic"):
                    self.challenge = challenge
                    return

    async def _authorization(self, scopes: tuple[str, ...], fresh: bool = False) -> str | None:
        challenge = self.challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return basic_header(self.credentials) if self.credentials else None
        realm, service = challenge.params.get("realm", ""), challenge.params.get("service", "")
        token = None if fresh else self.tokens.get(realm, service, scopes)
        if token is None:
            token, ttl = await fetch_token(self.session, challenge, scopes, self.credentials, self.ssl)
            self.tokens.put(realm, service, scopes, token, ttl)
        return f"Bearer {token}"

    async def login(self) -> None:
        """Check the credentials: a token (Bearer) or /v2/ itself (Basic) must accept them."""
        await self.ping()
        if self.challenge is None:
            return
        if self.challenge.scheme == "bearer":
            await self._authorization((), fresh=True)
            return
        async with self.session.get(f"{self.base}/v2/", ssl=self.ssl,
                                    headers={"Authorization": await self._authorization(()) or ""}) as r:
            if r.status == 401:
                raise Unauthorized(f'Get "{self.base}/v2/": unauthorized: incorrect username or password')

    async def request(self, method: str, path_or_url: str, scopes: tuple[str, ...], *,
                      headers: dict[str, str] | None = None, params: Any = None,
                      data: Callable[[], Any] | bytes | None = None) -> aiohttp.ClientResponse:
        """Send a request with auth; on 401, learn the new challenge, get a fresh token and retry once.

        `data` may be a callable making a fresh body, so a streamed body can be sent again on retry.
        The caller must release the response (`async with`).
        """
        await self.ping()
        url = urljoin(self.base + "/", path_or_url)
        for attempt in (0, 1):
            send_headers = dict(headers or {})
            auth = await self._authorization(scopes, fresh=attempt > 0)
            if auth:
                send_headers["Authorization"] = auth
            body = data() if callable(data) else data
            response = await self.session.request(method, url, headers=send_headers, params=params, data=body,
                                                  ssl=self.ssl)
            if response.status != 401 or attempt == 1:
                return response
            # The token expired, or the registry wants a scope we did not ask for (error="insufficient_scope").
            self._learn_challenge(response)
            response.release()
            if self.challenge is not None and self.challenge.scheme == "bearer":
                extra = self.challenge.params.get("scope")
                if extra and extra not in scopes:
                    scopes = scopes + tuple(extra.split())
        raise AssertionError("unreachable")

    # --- manifests -----------------------------------------------------------------------------------------

    async def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """(raw bytes, media type, digest) of a manifest or index, verified."""
        scopes = (f"repository:{repo}:pull",)
        what = f"manifest for {self.domain}/{repo}:{reference}" if ":" not in reference else \
            f"manifest for {self.domain}/{repo}@{reference}"
        async with await self.request("GET", f"/v2/{repo}/manifests/{reference}", scopes,
                                      headers={"Accept": MANIFEST_ACCEPT}) as response:
            if response.status == 404:
                raise NotFound(f"{what} not found: manifest unknown: manifest unknown")
            if response.status != 200:
                raise await _error_from(response, f"{what}")
            raw = await response.content.read(MAX_MANIFEST_BYTES + 1)
            if len(raw) > MAX_MANIFEST_BYTES:
                raise CorruptContent(f"{what}: larger than {MAX_MANIFEST_BYTES} bytes")
            media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip()
            header_digest = response.headers.get("Docker-Content-Digest")
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        expected = reference if ":" in reference else header_digest
        if expected and expected.startswith("sha256:") and expected != digest:
            raise CorruptContent(f"{what}: content has digest {digest}, expected {expected}")
        try:
            declared = json.loads(raw).get("mediaType")
        except (ValueError, AttributeError):
            raise CorruptContent(f"{what}: not valid JSON") from None
        return raw, declared or media_type, digest

    async def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        scopes = (f"repository:{repo}:pull,push",)
        async with await self.request("PUT", f"/v2/{repo}/manifests/{reference}", scopes, data=raw,
                                      headers={"Content-Type": media_type}) as response:
            if response.status not in (200, 201):
                raise await _error_from(response, f"pushing manifest for {self.domain}/{repo}:{reference}")
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    async def list_tags(self, repo: str) -> list[str]:
        scopes = (f"repository:{repo}:pull",)
        tags: list[str] = []
        path: str | None = f"/v2/{repo}/tags/list"
        while path:
            async with await self.request("GET", path, scopes) as response:
                if response.status != 200:
                    raise await _error_from(response, f"listing tags of {self.domain}/{repo}")
                tags += (await response.json(content_type=None)).get("tags") or []
                link = response.headers.get("Link", "")
            path = link[link.find("<") + 1:link.find(">")] if link.startswith("<") else None
        return tags

    # --- blobs ---------------------------------------------------------------------------------------------

    async def blob_size(self, repo: str, digest: str, scopes: tuple[str, ...] | None = None) -> int | None:
        """The size of a blob the repository has, or None."""
        scopes = scopes or (f"repository:{repo}:pull",)
        async with await self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes) as response:
            if response.status == 200:
                return int(response.headers.get("Content-Length", "-1"))
            if response.status == 404:
                return None
            raise await _error_from(response, f"checking blob {digest} in {self.domain}/{repo}")

    async def fetch_blob(self, repo: str, blob: Descriptor, new_writer: Callable[[], BlobWriter],
                         progress: ProgressFn | None = None) -> str:
        """Download a blob into the blob store, resuming after interruptions; returns its verified digest."""
        scopes = (f"repository:{repo}:pull",)
        writer = new_writer()
        failures = 0
        try:
            while True:
                try:
                    writer = await self._fetch_into(repo, blob, writer, new_writer, scopes, progress)
                    break
                except Exception as e:
                    if not _retryable(e):
                        raise
                    failures += 1
                    if failures > MAX_RETRIES:
                        raise HostError(f"downloading {blob.digest} from {self.domain}/{repo} failed "
                                        f"{failures} times, last: {e}") from None
                    await asyncio.sleep(min(0.1 * 2 ** failures, 2))
            # Verifies size and digest, fsyncs and renames into place: a wrong byte never becomes visible.
            return await asyncio.to_thread(writer.commit)
        finally:
            writer.abort() if writer.digest is None else None

    async def _fetch_into(self, repo: str, blob: Descriptor, writer: BlobWriter,
                          new_writer: Callable[[], BlobWriter], scopes: tuple[str, ...],
                          progress: ProgressFn | None) -> BlobWriter:
        offset = writer.size
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        async with await self.request("GET", f"/v2/{repo}/blobs/{blob.digest}", scopes,
                                      headers=headers) as response:
            if response.status == 206 and offset:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {offset}-"):
                    raise CorruptContent(f"registry answered range {content_range!r} to bytes={offset}-")
            elif response.status == 200:
                if offset:  # the registry ignores Range: start over
                    writer.abort()
                    writer = new_writer()
            elif response.status == 416 and offset == blob.size:
                return writer
            else:
                raise await _error_from(response, f"fetching blob {blob.digest} from {self.domain}/{repo}")
            async for chunk in response.content.iter_chunked(READ_CHUNK):
                writer.write(chunk)
                if progress is not None:
                    progress(writer.size, blob.size)
        return writer

    async def push_blob(self, repo: str, blob: Descriptor, opener: Callable[[], Any],
                        mount_from: list[str] = (), progress: ProgressFn | None = None) -> str:  # type: ignore[assignment]
        """Make the repository have a blob: 'exists', 'mounted' or 'pushed'."""
        push_scope = f"repository:{repo}:pull,push"
        if await self.blob_size(repo, blob.digest, (push_scope,)) == blob.size:
            return "exists"
        location = None
        for source in mount_from[:3]:
            scopes = (push_scope, f"repository:{source}:pull")
            async with await self.request("POST", f"/v2/{repo}/blobs/uploads/", scopes,
                                          params={"mount": blob.digest, "from": source}) as response:
                if response.status == 201:
                    return "mounted"
                if response.status == 202:
                    location = response.headers.get("Location")
                    break
        if location is None:
            async with await self.request("POST", f"/v2/{repo}/blobs/uploads/", (push_scope,)) as response:
                if response.status != 202 or not response.headers.get("Location"):
                    raise await _error_from(response, f"starting upload of {blob.digest} to {self.domain}/{repo}")
                location = response.headers["Location"]
        url = urljoin(self.base + "/", location)
        url += ("&" if "?" in url else "?") + f"digest={blob.digest}"

        def body() -> AsyncIterator[bytes]:
            return _file_chunks(opener, blob.size, progress)

        async with await self.request("PUT", url, (push_scope,), data=body, headers={
                "Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}) as response:
            if response.status not in (201, 204):
                raise await _error_from(response, f"uploading blob {blob.digest} to {self.domain}/{repo}")
        return "pushed"


async def _file_chunks(opener: Callable[[], Any], size: int, progress: ProgressFn | None) -> AsyncIterator[bytes]:
    done = 0
    with opener() as f:
        while True:
            chunk = f.read(READ_CHUNK)
            if not chunk:
                break
            done += len(chunk)
            if progress is not None:
                progress(done, size)
            yield chunk
