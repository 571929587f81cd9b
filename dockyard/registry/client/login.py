"""`login` and `logout`: check credentials against a registry, keep or forget them in config.json."""

from __future__ import annotations

from dockyard.registry.client.credentials import Credentials, CredentialStore
from dockyard.registry.client.hosts import DOCKER_HUB, normalize_server
from dockyard.registry.client.session import ClientOptions, ClientSession


def check_login(server: str, credentials: Credentials, options: ClientOptions) -> None:
    """Raise Unauthorized unless the registry accepts the credentials."""
    with ClientSession(options) as session:
        session.registry(normalize_server(server), credentials).login()


def login(server: str | None, credentials: Credentials, options: ClientOptions,
          store: CredentialStore | None = None) -> str:
    """Verify and store; returns the server name the credentials were stored under."""
    name = normalize_server(server or DOCKER_HUB)
    check_login(name, credentials, options)
    (store or CredentialStore()).store(name, credentials)
    return name


def logout(server: str | None, store: CredentialStore | None = None) -> tuple[str, bool]:
    name = normalize_server(server or DOCKER_HUB)
    return name, (store or CredentialStore()).erase(name)
