"""The HTTP endpoints of the registry (aiohttp).

Repository names contain slashes, so routing is done here with patterns anchored at the end of the path
(`<name>/blobs/<digest>`, `<name>/manifests/<reference>`...), tried in a fixed order, instead of with the
framework's router. Every request goes: match the route, validate the name, authorize, handle; every
RegistryError on the way becomes the spec's JSON error body.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from aiohttp import web

from dockyard.registry.server import auth
from dockyard.registry.server.blobio import send_blob
from dockyard.registry.server.errors import RegistryError, error_body
from dockyard.registry.server.manifests import KNOWN_MEDIA_TYPES, bare_media_type
from dockyard.registry.server.storage import MultipleErrors, Storage, check_digest, check_name
from dockyard.registry.server.uploads import Upload, check_content_range

log = logging.getLogger("dockyard.registry")

MAX_MANIFEST_BYTES = 4 << 20
MAX_TOKEN_FORM_BYTES = 64 << 10
MAX_PAGE = 10000
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]


@dataclass
class Call:
    """One routed request: the aiohttp request, the repository, the path parameters and who asks."""

    request: web.Request
    name: str
    params: dict[str, str]
    grant: auth.Grant | None   # None: no restrictions (auth mode none or basic)


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, tuple[str, str]]   # HTTP method -> (handler method name, action needed)


def _route(pattern: str, **methods: tuple[str, str]) -> Route:
    return Route(re.compile(pattern), methods)


ROUTES = [
    _route(r"(?P<name>.+)/blobs/uploads/?", POST=("start_upload", "push")),
    _route(r"(?P<name>.+)/blobs/uploads/(?P<upload>[^/]+)", GET=("upload_status", "push"),
           PATCH=("upload_chunk", "push"), PUT=("upload_finish", "push"), DELETE=("upload_cancel", "push")),
    _route(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)", GET=("get_blob", "pull"), HEAD=("get_blob", "pull"),
           DELETE=("delete_blob", "delete")),
    _route(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)", GET=("get_manifest", "pull"),
           HEAD=("get_manifest", "pull"), PUT=("put_manifest", "push"), DELETE=("delete_manifest", "delete")),
    _route(r"(?P<name>.+)/tags/list", GET=("list_tags", "pull")),
    _route(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)", GET=("list_referrers", "pull")),
]


def _link_next(path: str, last: str, n: int) -> str:
    from urllib.parse import quote

    return f'<{path}?last={quote(last, safe="")}&n={n}>; rel="next"'


def _page(items: list[str], request: web.Request, path: str) -> tuple[list[str], dict[str, str]]:
    """Apply the spec's `n` / `last` pagination; a Link header when more remain."""
    n_text = request.query.get("n")
    last = request.query.get("last")
    if last:
        items = [i for i in items if i > last]
    if n_text is None:
        n = MAX_PAGE
    else:
        if not n_text.isdigit():
            raise RegistryError("PAGINATION_NUMBER_INVALID", f"n must be a non-negative integer, not {n_text!r}")
        n = min(int(n_text), MAX_PAGE)
    if n == 0:
        return [], {}
    page = items[:n]
    headers = {"Link": _link_next(path, page[-1], n)} if len(items) > n else {}
    return page, headers


def _accepts(request: web.Request, media_type: str) -> bool:
    """Content negotiation for a stored manifest, as distribution does it.

    A manifest is stored in one form only, so the choice is to serve it or not: not, when the client lists
    manifest media types and this one is not among them (an old client that cannot read an OCI index).
    """
    wanted = set()
    for header in request.headers.getall("Accept", []):
        for part in header.split(","):
            wanted.add(bare_media_type(part))
    known = wanted & set(KNOWN_MEDIA_TYPES)
    return not known or media_type in wanted or "*/*" in wanted


class RegistryHandler:
    def __init__(self, storage: Storage, auth_config: auth.AuthConfig, tokens: auth.TokenIssuer | None,
                 max_active_uploads: int = 256) -> None:
        self.storage = storage
        self.auth = auth_config
        self.tokens = tokens
        self.max_active_uploads = max_active_uploads
        self.active_uploads = 0

    # --- dispatch ------------------------------------------------------------------------------------------------

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        try:
            response = await self._dispatch(request)
        except MultipleErrors as e:
            response = self._error(e.http_status, error_body(*e.errors), e.headers)
        except RegistryError as e:
            response = self._error(e.http_status, error_body(e), e.headers)
        response.headers.update(API_VERSION_HEADER)
        return response

    @staticmethod
    def _error(status: int, body: bytes, headers: dict[str, str]) -> web.Response:
        return web.Response(status=status, body=body, headers=headers, content_type="application/json")

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/token" and self.auth.mode == "token":
            return await self.token(request)
        if not path.startswith("/v2/") and path != "/v2":
            raise RegistryError("NOT_FOUND", f"no such endpoint {path}")
        tail = path[4:]
        if tail in ("", "/"):
            await self._authorize(request, None)
            return web.json_response({})
        if tail == "_catalog":
            if request.method != "GET":
                raise RegistryError("UNSUPPORTED", f"{request.method} is not allowed on {path}")
            await self._authorize(request, auth.Access("registry", "catalog", ("*",)))
            return self.catalog(request)
        for route in ROUTES:
            m = route.pattern.fullmatch(tail)
            if m is None:
                continue
            params = m.groupdict()
            name = check_name(params.pop("name"))
            try:
                method_name, action = route.methods[request.method]
            except KeyError:
                raise RegistryError("UNSUPPORTED", f"{request.method} is not allowed on {path}") from None
            grant = await self._authorize(request, auth.Access("repository", name, (action,)))
            handler: Handler = getattr(self, method_name)
            return await handler(Call(request, name, params, grant))
        raise RegistryError("NOT_FOUND", f"no such endpoint {path}")

    # --- authorization -------------------------------------------------------------------------------------------

    async def _authorize(self, request: web.Request, wanted: auth.Access | None) -> auth.Grant | None:
        """Check the request's credentials for `wanted` (None: only "is this someone we know?")."""
        mode = self.auth.mode
        if mode == "none":
            return None
        header = request.headers.get("Authorization")
        if mode == "basic":
            creds = auth.parse_basic(header)
            if creds is None or not await self._check_password(*creds):
                raise RegistryError("UNAUTHORIZED", detail=self._detail(wanted), headers={
                    "WWW-Authenticate": f'Basic realm="{self.auth.service}"'})
            return None
        assert self.tokens is not None
        token = auth.parse_bearer(header)
        grant = self.tokens.verify(token) if token else None
        if grant is not None and (wanted is None or grant.allows(wanted)):
            return grant
        challenge = f'Bearer realm="{self._realm(request)}",service="{self.auth.service}"'
        if wanted is not None:
            challenge += f',scope="{wanted.scope()}"'
        if grant is not None:
            challenge += ',error="insufficient_scope"'
        raise RegistryError("UNAUTHORIZED", detail=self._detail(wanted), headers={"WWW-Authenticate": challenge})

    @staticmethod
    def _detail(wanted: auth.Access | None) -> Any:
        if wanted is None:
            return None
        return [{"Type": wanted.type, "Name": wanted.name, "Action": a} for a in wanted.actions]

    def _realm(self, request: web.Request) -> str:
        return self.auth.realm or f"{request.scheme}://{request.host}/token"

    async def _check_password(self, user: str, password: str) -> bool:
        assert self.auth.htpasswd is not None
        # bcrypt is slow on purpose: keep it off the event loop.
        return await asyncio.to_thread(self.auth.htpasswd.check, user, password)

    async def token(self, request: web.Request) -> web.Response:
        """The token server: GET (Docker token flow) or POST (OAuth2 password grant)."""
        if request.method == "GET":
            creds = auth.parse_basic(request.headers.get("Authorization"))
            scopes = request.query.getall("scope", [])
        elif request.method == "POST":
            if (request.content_length or 0) > MAX_TOKEN_FORM_BYTES:
                raise RegistryError("SIZE_INVALID", "token request too large", status=413)
            form = await request.post()
            if form.get("grant_type") != "password":
                raise RegistryError("UNSUPPORTED", "only grant_type=password is supported", status=400)
            creds = (str(form.get("username", "")), str(form.get("password", "")))
            scopes = [str(form.get("scope", ""))]
        else:
            raise RegistryError("UNSUPPORTED", f"{request.method} is not allowed on /token")
        user = None
        if creds is not None:
            if not await self._check_password(*creds):
                raise RegistryError("UNAUTHORIZED", "invalid username or password",
                                    headers={"WWW-Authenticate": f'Basic realm="{self.auth.service}"'})
            user = creds[0]
        access = []
        for text in scopes:
            for scope in text.split():
                wanted = auth.parse_scope(scope)
                if wanted is None:
                    continue
                actions = auth.granted_actions(user, wanted, self.auth.anonymous_pull)
                if actions:
                    access.append(auth.Access(wanted.type, wanted.name, actions))
        assert self.tokens is not None
        token, ttl = self.tokens.issue(user or "", access)
        issued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return web.json_response({"token": token, "access_token": token, "expires_in": ttl, "issued_at": issued})

    # --- blobs ---------------------------------------------------------------------------------------------------

    async def get_blob(self, call: Call) -> web.StreamResponse:
        digest = check_digest(call.params["digest"])
        path, size = self.storage.stat_blob(call.name, digest)
        return await send_blob(call.request, path, size, {
            "Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
            "Cache-Control": "max-age=31536000", "ETag": f'"{digest}"'})

    async def delete_blob(self, call: Call) -> web.Response:
        self.storage.delete_blob(call.name, check_digest(call.params["digest"]))
        return web.Response(status=202, headers={"Content-Length": "0"})

    # --- uploads -------------------------------------------------------------------------------------------------

    def _upload_headers(self, upload: Upload) -> dict[str, str]:
        end = upload.offset - 1 if upload.offset > 0 else 0
        return {"Location": f"/v2/{upload.repo}/blobs/uploads/{upload.id}", "Range": f"0-{end}",
                "Docker-Upload-UUID": upload.id, "Blob-Upload-Session-ID": upload.id, "Content-Length": "0"}

    @staticmethod
    def _created(name: str, digest: str) -> web.Response:
        return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                                 "Docker-Content-Digest": digest, "Content-Length": "0"})

    async def start_upload(self, call: Call) -> web.Response:
        query = call.request.query
        mount, source = query.get("mount"), query.get("from")
        if mount is not None:
            digest = check_digest(mount)
            if source and self._may_pull(call, source) and self.storage.mount_blob(call.name, digest, source):
                return self._created(call.name, digest)
            # Otherwise the spec says: fall back to an ordinary upload session.
        upload = self.storage.uploads.start(call.name)
        digests = query.getall("digest", [])
        if not digests:
            return web.Response(status=202, headers=self._upload_headers(upload))
        async with upload.lock:
            await self._receive(call.request, upload, None)
            return await self._finish(upload, digests)

    def _may_pull(self, call: Call, source: str) -> bool:
        try:
            check_name(source)
        except RegistryError:
            return False
        return call.grant is None or call.grant.allows(auth.Access("repository", source, ("pull",)))

    async def upload_status(self, call: Call) -> web.Response:
        upload = self.storage.uploads.get(call.name, call.params["upload"])
        return web.Response(status=204, headers=self._upload_headers(upload))

    async def upload_chunk(self, call: Call) -> web.Response:
        upload = self.storage.uploads.get(call.name, call.params["upload"])
        async with upload.lock:
            expected = self._chunk_length(call.request, upload)
            await self._receive(call.request, upload, expected)
            return web.Response(status=202, headers=self._upload_headers(upload))

    async def upload_finish(self, call: Call) -> web.Response:
        upload = self.storage.uploads.get(call.name, call.params["upload"])
        digests = call.request.query.getall("digest", [])
        if not digests:
            raise RegistryError("DIGEST_INVALID", "the closing PUT of an upload needs ?digest=")
        for d in digests:
            check_digest(d)
        async with upload.lock:
            expected = self._chunk_length(call.request, upload)
            await self._receive(call.request, upload, expected)
            return await self._finish(upload, digests)

    async def upload_cancel(self, call: Call) -> web.Response:
        upload = self.storage.uploads.get(call.name, call.params["upload"])
        self.storage.uploads.discard(upload)
        return web.Response(status=204)

    def _chunk_length(self, request: web.Request, upload: Upload) -> int | None:
        header = request.headers.get("Content-Range")
        if not header:
            return None
        try:
            start, end = check_content_range(header, upload.offset)
        except RegistryError as e:
            e.headers.update(self._upload_headers(upload))
            raise
        return end - start + 1

    async def _receive(self, request: web.Request, upload: Upload, expected: int | None) -> None:
        """Stream the request body onto the upload; bounded memory whatever the size."""
        if not request.body_exists:
            if expected:
                raise RegistryError("SIZE_INVALID", f"Content-Range announces {expected} bytes, none were sent")
            return
        if self.active_uploads >= self.max_active_uploads:
            raise RegistryError("TOOMANYREQUESTS", headers={"Retry-After": "5"})
        self.active_uploads += 1
        upload.begin_chunk()
        try:
            received = 0
            async for data in request.content.iter_any():
                upload.write(data)
                received += len(data)
            if expected is not None and received != expected:
                raise RegistryError("SIZE_INVALID", f"Content-Range announces {expected} bytes, "
                                    f"{received} were sent")
        except (RegistryError, OSError) as e:
            if isinstance(e, ConnectionError):
                upload.keep_partial()
            else:
                upload.end_chunk(ok=False)  # a bad chunk, or the disk is full: as if it never came
            raise
        except BaseException:
            # The client went away (or its body was malformed) mid-chunk: keep what arrived, so that a
            # resumable client can ask where the upload stands and go on from there.
            upload.keep_partial()
            raise
        else:
            upload.end_chunk(ok=True)
        finally:
            self.active_uploads -= 1

    async def _finish(self, upload: Upload, digests: list[str]) -> web.Response:
        actual = upload.digest
        for d in digests:
            if d != actual:
                self.storage.uploads.discard(upload)
                raise RegistryError("DIGEST_INVALID", f"upload has digest {actual}, not {d}",
                                    detail={"digest": d})
        await asyncio.to_thread(upload.sync)
        digest = self.storage.commit_upload(upload, digests[0])
        return self._created(upload.repo, digest)

    # --- manifests -----------------------------------------------------------------------------------------------

    async def get_manifest(self, call: Call) -> web.Response:
        reference = call.params["reference"]
        stored = self.storage.get_manifest(call.name, reference)
        if not _accepts(call.request, stored.media_type):
            raise RegistryError("MANIFEST_UNKNOWN", f"manifest {reference} is a {stored.media_type}, which "
                                "the Accept header does not list", detail={"reference": reference})
        headers = {"Docker-Content-Digest": stored.digest, "ETag": f'"{stored.digest}"',
                   "Content-Type": stored.media_type}
        if call.request.method == "HEAD":
            headers["Content-Length"] = str(len(stored.raw))
            return web.Response(status=200, headers=headers)
        return web.Response(status=200, body=stored.raw, headers=headers)

    async def put_manifest(self, call: Call) -> web.Response:
        request = call.request
        if (request.content_length or 0) > MAX_MANIFEST_BYTES:
            raise RegistryError("SIZE_INVALID", f"manifest larger than {MAX_MANIFEST_BYTES} bytes", status=413)
        raw = bytearray()
        async for data in request.content.iter_any():
            raw += data
            if len(raw) > MAX_MANIFEST_BYTES:
                raise RegistryError("SIZE_INVALID", f"manifest larger than {MAX_MANIFEST_BYTES} bytes",
                                    status=413)
        reference = call.params["reference"]
        extra_tags = request.query.getall("tag", []) if ":" in reference else []
        digest, parsed = self.storage.put_manifest(call.name, reference, bytes(raw),
                                                   request.headers.get("Content-Type"), extra_tags)
        headers = {"Location": f"/v2/{call.name}/manifests/{digest}", "Docker-Content-Digest": digest,
                   "Content-Length": "0"}
        if parsed.subject is not None:
            headers["OCI-Subject"] = parsed.subject.digest
        response = web.Response(status=201, headers=headers)
        for tag in extra_tags:
            response.headers.add("OCI-Tag", tag)
        return response

    async def delete_manifest(self, call: Call) -> web.Response:
        self.storage.delete_manifest(call.name, call.params["reference"])
        return web.Response(status=202, headers={"Content-Length": "0"})

    # --- listings ------------------------------------------------------------------------------------------------

    async def list_tags(self, call: Call) -> web.Response:
        tags, headers = _page(self.storage.tags(call.name), call.request, f"/v2/{call.name}/tags/list")
        return web.json_response({"name": call.name, "tags": tags}, headers=headers)

    def catalog(self, request: web.Request) -> web.Response:
        repos, headers = _page(self.storage.repositories(), request, "/v2/_catalog")
        return web.json_response({"repositories": repos}, headers=headers)

    async def list_referrers(self, call: Call) -> web.Response:
        digest = check_digest(call.params["digest"])
        artifact_type = call.request.query.get("artifactType")
        descriptors = self.storage.referrers(call.name, digest, artifact_type)
        headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
        body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
        return web.Response(body=json.dumps(body).encode(), headers=headers, content_type=OCI_INDEX)
