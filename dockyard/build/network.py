"""The network a RUN step's container gets: the one seam to switch when `engine.networks` gives containers a
bridge network.

Today: `default` (and `host`) share the host's network namespace, so that `apt-get` in a Debian container can
reach the mirror; `none` gets a namespace with only loopback. The files the container sees as /etc/resolv.conf
and /etc/hosts are written here too; they are bind-mounted, never part of a layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.errors import InvalidArgument

MODES = ("default", "host", "none")
HOSTNAME = "buildkitsandbox"


@dataclass(frozen=True)
class RunNetwork:
    namespace: str | None  # None: the host's; "" a new one; else a path to join
    resolv_conf: str
    hosts: str


def run_network(mode: str) -> RunNetwork:
    """How a RUN step with `--network=mode` (or the build's --network) is connected."""
    if mode not in MODES:
        raise InvalidArgument(f"network mode {mode!r} not supported for RUN (use default, host or none)")
    hosts = f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    if mode == "none":
        return RunNetwork("", "", hosts)
    # default: the host's namespace until the bridge network lands (switch to engine.networks here).
    return RunNetwork(None, _host_resolv_conf(), hosts)


def _host_resolv_conf() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            return f.read()
    except OSError:
        return ""
