"""WWW-Authenticate challenges and the Docker token flow, client side.

A registry answers 401 with `WWW-Authenticate: Bearer realm="...",service="...",scope="..."` (or `Basic`).
For Bearer, the client asks the realm for a token covering the scopes it needs, with Basic credentials if it
has any (or an identity token through the OAuth2 refresh grant), and retries with `Authorization: Bearer`.
Tokens are cached per (realm, service, scopes) until shortly before they expire.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field

from dockyard.errors import Unauthorized
from dockyard.registry.client.credentials import Credentials

_PARAM = re.compile(r'\s*([a-zA-Z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')
DEFAULT_TOKEN_TTL = 60


@dataclass
class Challenge:
    scheme: str                     # "bearer" or "basic", lower case
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(header: str) -> list[Challenge]:
    """Parse one WWW-Authenticate header value into its challenges (there may be several)."""
    challenges: list[Challenge] = []
    pos = 0
    text = header.strip()
    while pos < len(text):
        m = re.match(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*", text[pos:])
        if m is None:
            break
        current = Challenge(m.group(1).lower())
        challenges.append(current)
        pos += m.end()
        while pos < len(text):
            p = _PARAM.match(text, pos)
            if p is None or p.end() == pos:
                break
            # A bare word followed by a space and no '=' starts the next challenge.
            current.params[p.group(1).lower()] = (p.group(2).replace('\\"', '"') if p.group(2) is not None
                                                  else p.group(3))
            pos = p.end()
    return challenges


def basic_header(credentials: Credentials) -> str:
    raw = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class CachedToken:
    token: str
    expires: float


class TokenCache:
    """Thread-safe: the layers of a pull or push share it."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...]], CachedToken] = {}
        self.lock = threading.Lock()

    def get(self, realm: str, service: str, scopes: tuple[str, ...]) -> str | None:
        entry = self._tokens.get((realm, service, scopes))
        if entry is None or entry.expires < time.monotonic():
            return None
        return entry.token

    def put(self, realm: str, service: str, scopes: tuple[str, ...], token: str, ttl: float) -> None:
        # Renew a little early: a token that expires between our check and the registry's is a failed request.
        self._tokens[(realm, service, scopes)] = CachedToken(token, time.monotonic() + max(ttl - 10, ttl / 2))


def fetch_token(http, challenge: Challenge, scopes: tuple[str, ...],  # type: ignore[no-untyped-def]
                credentials: Credentials | None, verify: bool) -> tuple[str, float]:
    """Ask the challenge's realm for a token; returns (token, ttl seconds)."""
    from urllib.parse import urlencode

    from dockyard.registry.client.http import TransportError

    realm = challenge.params.get("realm")
    if not realm:
        raise Unauthorized("the registry asked for a Bearer token but named no realm to get it from")
    service = challenge.params.get("service", "")
    try:
        if credentials is not None and credentials.identity_token:
            form = urlencode({"grant_type": "refresh_token", "refresh_token": credentials.identity_token,
                              "service": service, "scope": " ".join(scopes), "client_id": "dockyard"})
            response = http.request("POST", realm, {"Content-Type": "application/x-www-form-urlencoded"},
                                    form.encode(), verify)
        else:
            params = [("service", service)] if service else []
            params += [("scope", s) for s in scopes]
            headers = {"Authorization": basic_header(credentials)} if credentials is not None else {}
            if credentials is not None:
                params.append(("account", credentials.username))
            url = realm + ("&" if "?" in realm else "?") + urlencode(params) if params else realm
            response = http.request("GET", url, headers, None, verify)
        with response:
            body = response.read(1 << 20)
            if response.status in (401, 403):
                raise Unauthorized(f"Get \"{realm}\": unauthorized: incorrect username or password")
            if response.status != 200:
                raise Unauthorized(f"token server {realm} answered {response.status}: {body[:200]!r}")
    except TransportError as e:
        raise Unauthorized(f"cannot get a token from {realm}: {e}") from None
    try:
        value = json.loads(body)
    except ValueError:
        raise Unauthorized(f"token server {realm} answered something that is not JSON") from None
    token = value.get("token") or value.get("access_token")
    if not token:
        raise Unauthorized(f"token server {realm} answered without a token")
    ttl = value.get("expires_in") or DEFAULT_TOKEN_TTL
    return token, float(ttl)
