"""A client session: one aiohttp session, the user's credentials and the clients of the registries used."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp

from dockyard import __version__
from dockyard.registry.client.auth import TokenCache
from dockyard.registry.client.credentials import CredentialStore, Credentials
from dockyard.registry.client.hosts import insecure_registries, is_insecure
from dockyard.registry.client.transport import RegistryClient

# Registries and proxies close idle connections; a generous read timeout covers slow layers, not stalls.
TIMEOUT = aiohttp.ClientTimeout(total=None, connect=30, sock_connect=30, sock_read=120)


@dataclass
class ClientOptions:
    insecure_registries: list[str] = field(default_factory=list)
    credentials: CredentialStore | None = None
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5


class ClientSession:
    """`async with ClientSession(options) as s: s.registry("docker.io")`."""

    def __init__(self, options: ClientOptions | None = None) -> None:
        self.options = options or ClientOptions()
        self.credentials = self.options.credentials or CredentialStore()
        self.insecure = insecure_registries(self.options.insecure_registries)
        self.tokens = TokenCache()
        self._clients: dict[str, RegistryClient] = {}
        self.http: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "ClientSession":
        connector = aiohttp.TCPConnector(limit=32, limit_per_host=16, enable_cleanup_closed=True)
        # auto_decompress off: a blob's bytes are hashed exactly as the registry stores them.
        self.http = aiohttp.ClientSession(connector=connector, timeout=TIMEOUT, auto_decompress=False,
                                          read_bufsize=1 << 20, headers={"User-Agent": f"dockyard/{__version__}"})
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.http is not None:
            await self.http.close()

    def registry(self, domain: str, credentials: Credentials | None = None) -> RegistryClient:
        client = self._clients.get(domain)
        if client is None:
            assert self.http is not None, "use ClientSession as an async context manager"
            creds = credentials if credentials is not None else self.credentials.get(domain)
            client = RegistryClient(self.http, domain, creds, is_insecure(domain, self.insecure), self.tokens)
            self._clients[domain] = client
        return client
