"""Checks and normal forms for values that end up in the image config: ports, stop signals, workdirs."""

from __future__ import annotations

import posixpath

from dockyard.build.errors import DockerfileError

SIGNAL_NAMES = frozenset(
    ["ABRT", "ALRM", "BUS", "CHLD", "CLD", "CONT", "FPE", "HUP", "ILL", "INT", "IO", "IOT", "KILL", "PIPE",
     "POLL", "PROF", "PWR", "QUIT", "SEGV", "STKFLT", "STOP", "SYS", "TERM", "TRAP", "TSTP", "TTIN", "TTOU",
     "URG", "USR1", "USR2", "VTALRM", "WINCH", "XCPU", "XFSZ", "RTMIN", "RTMAX"]
    + [f"RTMIN+{i}" for i in range(1, 16)] + [f"RTMAX-{i}" for i in range(1, 15)])
PROTOCOLS = ("tcp", "udp", "sctp")


def check_stop_signal(signal: str) -> str:
    """A signal number or name (`SIGTERM`, `term`, `RTMIN+3`, `9`), as Docker accepts; returned unchanged."""
    try:
        if int(signal, 10) != 0:
            return signal
    except ValueError:
        name = signal.upper()
        if (name.removeprefix("SIG")) in SIGNAL_NAMES:
            return signal
    raise DockerfileError(f"invalid signal: {signal}")


def exposed_ports(specs: list[str]) -> list[str]:
    """EXPOSE values as `port/proto` keys: `80` -> `80/tcp`, `53/udp`, `8000-8002` -> three ports.

    Docker still accepts (and ignores) an `ip:hostport:` prefix; it is validated and dropped the same way.
    """
    ports: dict[str, None] = {}  # ordered set: the config keeps each port once
    for spec in specs:
        ports.update(dict.fromkeys(_one_port_spec(spec)))
    return list(ports)


def _one_port_spec(raw: str) -> list[str]:
    parts = raw.split(":")
    container = parts[-1]
    host = parts[-2] if len(parts) >= 2 else ""
    port, _, proto = container.partition("/")
    if port == "":
        raise DockerfileError(f"invalid port: {raw!r}: no port specified")
    if proto.lower() not in ("", *PROTOCOLS):
        raise DockerfileError(f"invalid port: {raw!r}: invalid proto: {proto}")
    proto = proto.lower() or "tcp"
    start, end = _port_range(port, "containerPort")
    if host:
        host_start, host_end = _port_range(host, "hostPort")
        if end - start != host_end - host_start and end != start:
            raise DockerfileError(f"invalid ranges specified for container and host Ports: {port} and {host}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def _port_range(text: str, what: str) -> tuple[int, int]:
    first, dash, last = text.partition("-")
    start = _port_number(first, text, what)
    if not dash or first == last:
        return start, start
    end = _port_number(last, text, what)
    if end < start:
        raise DockerfileError(f"invalid {what}: {text}")
    return start, end


def _port_number(text: str, whole: str, what: str) -> int:
    stripped = text[1:] if text[:1] in "+-" else text
    if not stripped.isascii() or not stripped.isdigit():
        raise DockerfileError(f"invalid {what}: {whole}")
    value = int(text)
    if not 0 <= value <= 65535:
        raise DockerfileError(f"invalid {what}: {whole}")
    return value


def clean_path(path: str) -> str:
    """Go's path.Clean: like normpath, but "" is "." and a leading "//" is "/"."""
    if path == "":
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


def resolve_workdir(current: str | None, path: str) -> str:
    """The absolute, cleaned working directory after `WORKDIR path` (relative paths join the current one)."""
    if not posixpath.isabs(path):
        path = posixpath.join(current or "/", path)
    return clean_path(path)
