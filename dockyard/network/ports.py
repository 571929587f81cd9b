"""Published ports: from HostConfig.PortBindings / PublishAllPorts to concrete host ports, each reserved.

The kernel forwards a published port (DNAT, see firewall.py), so no process listens on it; the monitor still
binds a socket to every published host address and port (without listening) for as long as the mapping
lives. That reservation is what makes a clash an error at `run` time, naming the port, rather than a
silent mix-up: with another container's port, another dockyard root's, or a host process's. It also keeps
the kernel from handing the port out as an ephemeral one (and is how `-p 80` gets a free port: bind to 0).
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass
from typing import Any

from dockyard.errors import Conflict, InvalidArgument


@dataclass
class Binding:
    proto: str
    container_port: int
    host_ip: str        # "" or "0.0.0.0" for every address
    host_port: int
    sock: socket.socket | None = None

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    def mapping(self, container_ip: str) -> tuple[str, str, int, str, int]:
        return self.proto, self.host_ip, self.host_port, container_ip, self.container_port

    def release(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _split(key: str) -> tuple[int, str]:
    port, _, proto = key.partition("/")
    return int(port), proto or "tcp"


def _host_ports(text: str) -> list[int]:
    """'' -> [0] (any free port); '8080' -> [8080]; '8000-8010' -> the range, tried in order."""
    if not text:
        return [0]
    start, dash, end = text.partition("-")
    try:
        first, last = int(start), int(end) if dash else int(start)
    except ValueError:
        raise InvalidArgument(f"invalid host port: {text}") from None
    if not 0 <= first <= last <= 65535:
        raise InvalidArgument(f"invalid host port: {text}")
    return list(range(first, last + 1))


def wanted(host: dict[str, Any], config: dict[str, Any]) -> list[tuple[str, int, str, str]]:
    """(proto, container port, host ip, host port text) for every port to publish."""
    out: list[tuple[str, int, str, str]] = []
    bindings = host.get("PortBindings") or {}
    for key, entries in bindings.items():
        port, proto = _split(key)
        for entry in entries or [{}]:
            out.append((proto, port, (entry or {}).get("HostIp") or "", (entry or {}).get("HostPort") or ""))
    if host.get("PublishAllPorts"):
        for key in config.get("ExposedPorts") or {}:
            if key not in bindings:
                port, proto = _split(key)
                out.append((proto, port, "", ""))
    return out


def _reserve(proto: str, host_ip: str, ports: list[int], what: str) -> tuple[socket.socket, int]:
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    last_error: OSError | None = None
    for port in ports:
        sock = socket.socket(socket.AF_INET, kind)
        try:
            sock.bind((host_ip or "0.0.0.0", port))
        except OSError as e:
            sock.close()
            last_error = e
            continue
        return sock, sock.getsockname()[1]
    assert last_error is not None
    shown = f"{host_ip or '0.0.0.0'}:{ports[0] if len(ports) == 1 else f'{ports[0]}-{ports[-1]}'}"
    if last_error.errno == errno.EADDRINUSE:
        raise Conflict(f"driver failed programming external connectivity on endpoint {what}: "
                       f"Bind for {shown} failed: port is already allocated")
    raise Conflict(f"driver failed programming external connectivity on endpoint {what}: "
                   f"listen {proto}4 {shown}: bind: {last_error.strerror.lower()}")


def reserve(host: dict[str, Any], config: dict[str, Any], what: str) -> list[Binding]:
    """Bind every wanted host port; all or nothing."""
    made: list[Binding] = []
    try:
        for proto, port, host_ip, host_port in wanted(host, config):
            if proto not in ("tcp", "udp"):
                raise InvalidArgument(f"unsupported protocol for a published port: {proto}")
            if host_ip and ":" in host_ip:
                continue  # IPv6 host addresses: not published (no IPv6 on our bridges)
            sock, chosen = _reserve(proto, host_ip, _host_ports(host_port), what)
            made.append(Binding(proto, port, host_ip, chosen, sock))
    except BaseException:
        for binding in made:
            binding.release()
        raise
    return made


def ports_view(config: dict[str, Any], bindings: list[Binding]) -> dict[str, list[dict[str, str]] | None]:
    """NetworkSettings.Ports: every exposed port, with its host bindings (null when not published)."""
    view: dict[str, list[dict[str, str]] | None] = {key: None for key in config.get("ExposedPorts") or {}}
    for b in bindings:
        entries = view.get(b.key) or []
        entries.append({"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)})
        view[b.key] = entries
    return view
