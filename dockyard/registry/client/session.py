"""A client session: the HTTP client, the user's credentials and the clients of the registries used."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from dockyard import __version__
from dockyard.registry.client.auth import TokenCache
from dockyard.registry.client.credentials import Credentials, CredentialStore
from dockyard.registry.client.hosts import insecure_registries, is_insecure, normalize_server
from dockyard.registry.client.http import HttpClient
from dockyard.registry.client.transport import RegistryClient


@dataclass
class ClientOptions:
    insecure_registries: list[str] = field(default_factory=list)
    credentials: CredentialStore | None = None
    # Credentials given with the request (the Engine API's X-Registry-Auth), by registry; they win over the store.
    auth: dict[str, Credentials] = field(default_factory=dict)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5


class ClientSession:
    """`with ClientSession(options) as s: s.registry("docker.io")`."""

    def __init__(self, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        self.credentials = self.options.credentials or CredentialStore()
        self.insecure = insecure_registries(self.options.insecure_registries)
        self.tokens = TokenCache()
        self.http = HttpClient(f"dockyard/{__version__}")
        self._clients: dict[str, RegistryClient] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> "ClientSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def registry(self, domain: str, credentials: Credentials | None = None) -> RegistryClient:
        with self._lock:
            client = self._clients.get(domain)
            if client is None:
                creds = credentials or self.options.auth.get(normalize_server(domain)) or \
                    self.credentials.get(domain)
                client = RegistryClient(self.http, domain, creds, is_insecure(domain, self.insecure), self.tokens)
                self._clients[domain] = client
            return client
