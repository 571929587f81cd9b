"""Registry names: the host that serves a reference's domain, its credential key, and plain-HTTP policy.

Docker treats 127.0.0.0/8 (and localhost, ::1) as insecure registries out of the box, and anything listed by
the user. An insecure registry is tried over HTTPS without certificate checks first and over plain HTTP if
that fails, as Docker does; every other registry only over verified HTTPS.
"""

from __future__ import annotations

import ipaddress
import os

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DOCKER_HUB_CREDENTIAL_KEY = "https://index.docker.io/v1/"
INSECURE_ENV = "DOCKYARD_INSECURE_REGISTRIES"


def api_host(domain: str) -> str:
    """The host[:port] to send API requests to for a reference's domain."""
    return DOCKER_HUB_API if domain in (DOCKER_HUB, "index.docker.io") else domain


def credential_key(server: str) -> str:
    """The key of a registry in config.json's `auths`: Docker Hub keeps its historical URL."""
    server = normalize_server(server)
    return DOCKER_HUB_CREDENTIAL_KEY if server in (DOCKER_HUB, "index.docker.io", DOCKER_HUB_API) else server


def normalize_server(server: str) -> str:
    """'https://127.0.0.1:5000/v2/' -> '127.0.0.1:5000'; 'https://index.docker.io/v1/' -> 'docker.io'."""
    text = server.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix):]
    text = text.split("/", 1)[0]
    if text in ("index.docker.io", DOCKER_HUB_API, ""):
        return DOCKER_HUB
    return text


def _host_only(domain: str) -> str:
    if domain.startswith("["):
        return domain[1:domain.find("]")]
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def insecure_registries(extra: list[str] | None = None) -> list[str]:
    """The user's insecure registries: DOCKYARD_INSECURE_REGISTRIES (comma or space separated) and flags."""
    values = (os.environ.get(INSECURE_ENV) or "").replace(",", " ").split()
    return values + list(extra or [])


def is_insecure(domain: str, configured: list[str]) -> bool:
    """May this registry be reached over plain HTTP (or HTTPS without verification)?"""
    host = _host_only(domain)
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return True
    for entry in configured:
        if "://" not in entry and "/" in entry:  # a CIDR range, as in Docker's insecure-registries
            try:
                if address is not None and address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        if normalize_server(entry) in (domain, host):
            return True
    return False
