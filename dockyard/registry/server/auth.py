"""Who may do what: htpasswd users (bcrypt), HTTP Basic, and bearer tokens for the Docker token flow.

Three modes:
  none    anyone may do anything (the default, like a plain `registry:2`);
  basic   every request carries `Authorization: Basic` of an htpasswd user;
  token   every request carries `Authorization: Bearer <token>`; tokens come from our own /token endpoint,
          which checks Basic credentials against the htpasswd file and grants the scopes asked for.

Tokens are our own compact format, `base64url(claims).base64url(HMAC-SHA256(key, claims))`: the registry and
its token server are one process (or share the key file), so nothing heavier than an HMAC is needed, and a
client treats the token as opaque anyway. Authenticated users get pull, push and delete on every repository;
anonymous users get pull only with `anonymous_pull`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import InvalidArgument

ALL_ACTIONS = ("pull", "push", "delete")


@dataclass(frozen=True)
class Access:
    """One resource and the actions wanted on it, as in a token scope 'repository:name:pull,push'."""

    type: str
    name: str
    actions: tuple[str, ...]

    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def parse_scope(scope: str) -> Access | None:
    """'repository:a/b:pull,push' -> Access; the name may contain ':' (a registry host:port prefix)."""
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return Access(kind, name, tuple(a for a in actions.split(",") if a))


# --- htpasswd ---------------------------------------------------------------------------------------------------

class Htpasswd:
    """Users from an htpasswd file. Only bcrypt entries (htpasswd -B) are accepted, as in distribution."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.users: dict[str, bytes] = {}
        try:
            text = path.read_text()
        except OSError as e:
            raise InvalidArgument(f"cannot read htpasswd file {path}: {e.strerror}") from None
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2a$", "$2b$")):
                raise InvalidArgument(f"{path}:{number}: only bcrypt entries are supported (htpasswd -B)")
            self.users[user] = hashed.encode()
        # A bcrypt check costs milliseconds of CPU; remember recent successes (by a hash of the password).
        self._recent: dict[tuple[str, bytes], float] = {}

    def check(self, user: str, password: str) -> bool:
        import bcrypt

        hashed = self.users.get(user)
        if hashed is None:
            return False
        key = (user, hashlib.sha256(password.encode()).digest())
        now = time.monotonic()
        if self._recent.get(key, 0) > now:
            return True
        ok = bcrypt.checkpw(password.encode(), hashed)
        if ok:
            if len(self._recent) > 1000:
                self._recent.clear()
            self._recent[key] = now + 60
        return ok


def parse_basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header[:6].lower() == "basic ":
        return None
    try:
        user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def parse_bearer(header: str | None) -> str | None:
    if not header or not header[:7].lower() == "bearer ":
        return None
    return header[7:].strip() or None


# --- tokens -----------------------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Grant:
    subject: str
    access: list[Access] = field(default_factory=list)

    def allows(self, wanted: Access) -> bool:
        for a in self.access:
            if a.type == wanted.type and a.name == wanted.name and (
                    "*" in a.actions or all(x in a.actions for x in wanted.actions)):
                return True
        return False


class TokenIssuer:
    def __init__(self, key: bytes, service: str, ttl: int = 300) -> None:
        self.key = key
        self.service = service
        self.ttl = ttl

    @classmethod
    def with_key_file(cls, path: Path, service: str, ttl: int = 300) -> "TokenIssuer":
        """Keep the signing key in the registry root, so tokens survive a restart of the server."""
        try:
            key = path.read_bytes()
        except FileNotFoundError:
            key = secrets.token_bytes(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key)
        return cls(key, service, ttl)

    def issue(self, subject: str, access: list[Access]) -> tuple[str, int]:
        claims = {"sub": subject, "aud": self.service, "exp": int(time.time()) + self.ttl,
                  "access": [{"type": a.type, "name": a.name, "actions": list(a.actions)} for a in access]}
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        sig = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        return f"{body}.{sig}", self.ttl

    def verify(self, token: str) -> Grant | None:
        body, sep, sig = token.partition(".")
        if not sep:
            return None
        expected = _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, sig):
            return None
        try:
            claims = json.loads(_unb64(body))
            if claims.get("aud") != self.service or claims.get("exp", 0) < time.time():
                return None
            access = [Access(a["type"], a["name"], tuple(a["actions"])) for a in claims.get("access", [])]
            return Grant(str(claims.get("sub", "")), access)
        except (ValueError, KeyError, TypeError):
            return None


# --- policy -----------------------------------------------------------------------------------------------------

@dataclass
class AuthConfig:
    mode: str = "none"                 # none | basic | token
    htpasswd: Htpasswd | None = None
    realm: str | None = None           # token mode: the token endpoint's URL; None = this server's /token
    service: str = "dockyard-registry"
    anonymous_pull: bool = False
    token_ttl: int = 300


def granted_actions(user: str | None, wanted: Access, anonymous_pull: bool) -> tuple[str, ...]:
    """What the policy grants `user` (None: anonymous) of what was asked."""
    if user is not None:
        allowed = ALL_ACTIONS if wanted.type == "repository" else ("*",)
    elif anonymous_pull and wanted.type == "repository":
        allowed = ("pull",)
    else:
        allowed = ()
    if "*" in allowed:
        return wanted.actions
    return tuple(a for a in wanted.actions if a in allowed)
