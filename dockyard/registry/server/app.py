"""Building, starting and stopping the registry server.

`serve(config)` runs it in the foreground (the CLI); `RegistryServer` starts it on an event loop of the
caller's (port 0 picks a free port); `ServerThread` runs it on a thread of its own, for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path

from dockyard.errors import InvalidArgument
from dockyard.registry.server import auth
from dockyard.registry.server.routes import RegistryHandler
from dockyard.registry.server.storage import Storage

DEFAULT_ROOT = "/var/lib/registry"
DEFAULT_ADDR = "127.0.0.1:5000"
# Generous enough for a large bearer token in Authorization, small enough to bound what a header costs.
MAX_FIELD_SIZE = 16384

log = logging.getLogger("dockyard.registry")


@dataclass
class ServerConfig:
    root: Path = Path(DEFAULT_ROOT)
    host: str = "127.0.0.1"
    port: int = 5000
    htpasswd: Path | None = None
    auth_mode: str | None = None          # None: "basic" with an htpasswd file, else "none"
    token_realm: str | None = None
    token_service: str = "dockyard-registry"
    anonymous_pull: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    access_log: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def parse_addr(text: str) -> tuple[str, int]:
    """'127.0.0.1:5000', ':5000' (all addresses), '[::1]:5000' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise InvalidArgument(f"invalid address {text!r}: expected HOST:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def build_handler(config: ServerConfig) -> RegistryHandler:
    mode = config.auth_mode or ("basic" if config.htpasswd else "none")
    if mode not in ("none", "basic", "token"):
        raise InvalidArgument(f"unknown auth mode {mode!r}: use none, basic or token")
    htpasswd = auth.Htpasswd(config.htpasswd) if config.htpasswd else None
    if mode != "none" and htpasswd is None:
        raise InvalidArgument(f"auth mode {mode!r} needs --htpasswd FILE")
    storage = Storage(config.root)
    tokens = None
    if mode == "token":
        tokens = auth.TokenIssuer.with_key_file(config.root / "token.key", config.token_service)
    auth_config = auth.AuthConfig(mode, htpasswd, config.token_realm, config.token_service,
                                  config.anonymous_pull)
    return RegistryHandler(storage, auth_config, tokens)


def ssl_context(config: ServerConfig) -> ssl.SSLContext | None:
    if not config.tls_cert and not config.tls_key:
        return None
    if not (config.tls_cert and config.tls_key):
        raise InvalidArgument("--tls-cert and --tls-key go together")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return context


class RegistryServer:
    """The server on the caller's event loop."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.handler = build_handler(config)
        self._runner = None
        self.port = config.port

    async def start(self) -> int:
        from aiohttp import web

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handler.dispatch)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=log if self.config.access_log else None,
                                     max_field_size=MAX_FIELD_SIZE)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, ssl_context=ssl_context(self.config),
                           backlog=1024, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        scheme = "https" if self.config.tls_cert else "http"
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"{scheme}://{host}:{self.port}"


def serve(config: ServerConfig, ready: "callable | None" = None) -> None:  # type: ignore[valid-type]
    """Run in the foreground until SIGINT or SIGTERM."""

    async def main() -> None:
        server = RegistryServer(config)
        await server.start()
        log.info("listening on %s (root %s)", server.url, config.root)
        if ready is not None:
            ready(server)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await server.stop()

    asyncio.run(main())


class ServerThread:
    """The server on a thread of its own: `with ServerThread(config) as server: server.url`."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.server: RegistryServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> "ServerThread":
        self._thread = threading.Thread(target=self._run, name="registry-server", daemon=True)
        self._thread.start()
        self._started.wait(30)
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self.server = RegistryServer(self.config)
            loop.run_until_complete(self.server.start())
        except BaseException as e:  # handed to the starting thread
            self._error = e
            self._started.set()
            return
        self._started.set()
        loop.run_forever()
        loop.run_until_complete(self.server.stop())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
