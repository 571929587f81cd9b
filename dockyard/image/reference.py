"""Image references: Docker's grammar, normalisation and the familiar (short) form.

    reference   := name [":" tag] ["@" digest]
    name        := [domain "/"] path
    domain      := host [":" port]           host: DNS labels joined by ".", an IPv4 address or "[IPv6]"
    path        := component ("/" component)*
    component   := [a-z0-9]+ (separator [a-z0-9]+)*     separator: "." | "_" | "__" | "-"+
    tag         := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest      := algorithm ":" hex              (sha256 needs exactly 64 lowercase hex digits)

A first path part is a domain when it contains "." or ":", is "localhost", or has an upper-case letter. Names
without a domain live on docker.io, and one-part names there under "library/". Every error names the rule the
input breaks, so a user can fix it without reading this file.
"""

from __future__ import annotations

import re

from dockyard.errors import InvalidReference

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_MAX_LENGTH = 255

_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)
_DOMAIN_LABEL = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?")
_IPV6 = re.compile(r"\[[a-fA-F0-9:]+\]")
_PORT = re.compile(r"[0-9]+")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_ANCHORED_HEX64 = re.compile(r"[a-f0-9]{64}")


def _bad(text: str, why: str) -> InvalidReference:
    return InvalidReference(f"invalid reference format: {text!r}: {why}")


def validate_digest(digest: str) -> str:
    """Check a digest string ("sha256:<64 hex>"); return it unchanged."""
    if not _DIGEST.fullmatch(digest):
        raise InvalidReference(
            f"invalid digest {digest!r}: must be <algorithm>:<hex>, with at least 32 hex digits"
        )
    algorithm, hex_ = digest.split(":", 1)
    if algorithm == "sha256" and not _SHA256_HEX.fullmatch(hex_):
        raise InvalidReference(f"invalid digest {digest!r}: sha256 needs exactly 64 lowercase hex digits")
    if algorithm not in ("sha256", "sha512"):
        raise InvalidReference(f"unsupported digest algorithm {algorithm!r} in {digest!r}")
    return digest


def validate_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise _bad(tag, "a tag must be 1 to 128 characters of letters, digits, '_', '.' and '-', "
                        "and must not start with '.' or '-'")
    return tag


def _validate_domain(domain: str, text: str) -> None:
    host, port = domain, None
    if not host.startswith("["):
        host, _, port = domain.partition(":")
        if not _:
            port = None
    else:
        close = host.find("]")
        if close < 0:
            raise _bad(text, f"domain {domain!r} opens an IPv6 address with '[' and never closes it")
        host, rest = domain[: close + 1], domain[close + 1:]
        if rest:
            if not rest.startswith(":"):
                raise _bad(text, f"domain {domain!r}: only ':<port>' may follow an IPv6 address")
            port = rest[1:]
        if not _IPV6.fullmatch(host):
            raise _bad(text, f"domain {domain!r} is not a valid IPv6 address in brackets")
    if port is not None and not _PORT.fullmatch(port):
        raise _bad(text, f"port {port!r} of domain {domain!r} must be digits only")
    if not host.startswith("["):
        for label in host.split("."):
            if not _DOMAIN_LABEL.fullmatch(label):
                raise _bad(text, f"domain {domain!r}: each dot-separated part must be letters, digits and "
                                 f"inner '-' (got {label!r})")


def _validate_path(path: str, text: str) -> None:
    if not path:
        raise _bad(text, "repository name is empty")
    for component in path.split("/"):
        if not component:
            raise _bad(text, "repository path has an empty component ('//' or a trailing '/')")
        if not _COMPONENT.fullmatch(component):
            if _COMPONENT.fullmatch(component.lower()):
                raise _bad(text, f"repository name must be lowercase (component {component!r})")
            raise _bad(text, f"path component {component!r} must be lowercase letters and digits separated "
                             f"by '.', '_', '__' or '-'")


def _split_domain(name: str) -> tuple[str, str]:
    """Split a name into (domain, path) per Docker's rule, without adding defaults."""
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.lower() != first):
        return first, rest
    return "", name


class Reference:
    """A normalised reference: domain and path are always set; tag and/or digest may be None."""

    __slots__ = ("domain", "path", "tag", "digest")

    def __init__(self, domain: str, path: str, tag: str | None = None, digest: str | None = None) -> None:
        self.domain, self.path, self.tag, self.digest = domain, path, tag, digest

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"Reference({str(self)!r})"

    @property
    def repository(self) -> str:
        """Full repository name, e.g. docker.io/library/busybox."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """Docker's short form: busybox, user/app, 127.0.0.1:5000/app."""
        if self.domain == DEFAULT_DOMAIN:
            if self.path.startswith(OFFICIAL_REPO_PREFIX) and "/" not in self.path[len(OFFICIAL_REPO_PREFIX):]:
                return self.path[len(OFFICIAL_REPO_PREFIX):]
            return self.path
        return self.repository

    def __str__(self) -> str:
        return self._render(self.repository)

    @property
    def familiar(self) -> str:
        return self._render(self.familiar_repository)

    def _render(self, repo: str) -> str:
        text = repo
        if self.tag is not None:
            text += ":" + self.tag
        if self.digest is not None:
            text += "@" + self.digest
        return text

    def with_tag(self, tag: str) -> "Reference":
        return Reference(self.domain, self.path, validate_tag(tag), None)

    def with_digest(self, digest: str) -> "Reference":
        return Reference(self.domain, self.path, None, validate_digest(digest))

    def repo_only(self) -> "Reference":
        return Reference(self.domain, self.path)


def parse(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise a reference; add ':latest' when neither tag nor digest is given."""
    if not text:
        raise _bad(text, "reference is empty")
    if any(c.isspace() for c in text):
        raise _bad(text, "reference contains whitespace")
    name, at, digest = text.partition("@")
    if at:
        validate_digest(digest)
    tag = None
    # The tag is after the last ':' only if no '/' follows it (otherwise that ':' is a domain's port).
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1:]
        validate_tag(tag)
    if len(name) > NAME_MAX_LENGTH:
        raise _bad(text, f"repository name must not be longer than {NAME_MAX_LENGTH} characters")
    domain, path = _split_domain(name)
    if domain:
        _validate_domain(domain, text)
        if domain == LEGACY_DEFAULT_DOMAIN:
            domain = DEFAULT_DOMAIN
    else:
        domain = DEFAULT_DOMAIN
    _validate_path(path, text)
    if domain == DEFAULT_DOMAIN and "/" not in path:
        if _ANCHORED_HEX64.fullmatch(path):
            raise _bad(text, "a repository name must not be a 64-character hexadecimal string (that is an id)")
        path = OFFICIAL_REPO_PREFIX + path
    if default_tag and tag is None and not at:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest if at else None)


def parse_repository(text: str) -> Reference:
    """A repository name alone: no tag, no digest."""
    ref = parse(text, default_tag=False)
    if ref.tag is not None or ref.digest is not None:
        raise _bad(text, "a repository name must not carry a tag or digest here")
    return ref


def familiar(text: str) -> str:
    """The short form of a stored full reference string."""
    return parse(text, default_tag=False).familiar


def looks_like_id(text: str) -> bool:
    """True for a full or prefixed image id: 'sha256:<hex>' or a bare lowercase hex string."""
    hex_ = text[7:] if text.startswith("sha256:") else text
    return 0 < len(hex_) <= 64 and all(c in "0123456789abcdef" for c in hex_)
