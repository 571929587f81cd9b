"""The network a RUN step's container gets, made once per build and shared by its RUN steps.

`default` is a namespace on the default bridge, as dockerd's BuildKit gives RUN steps: an address, a default
route and NAT (apt-get reaches the mirror), lent by the monitor for as long as the build holds the connection
it asked on. `host` is the host's namespace, `none` one with only loopback (up). The files the container sees
as /etc/resolv.conf and /etc/hosts are written here too; they are bind-mounted, never part of a layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dockyard.build.sandbox import Sandbox
from dockyard.errors import HostError, InvalidArgument
from dockyard.linux import MS_BIND

MODES = ("default", "host", "none")
HOSTNAME = "buildkitsandbox"
HOSTS = f"127.0.0.1\tlocalhost {HOSTNAME}\n::1\tlocalhost ip6-localhost ip6-loopback\n"


@dataclass(frozen=True)
class RunNetwork:
    namespace: str | None  # None: the host's; "" a new one; else a path to join
    resolv_conf: str
    hosts: str


def run_network(mode: str, sandbox: Sandbox) -> RunNetwork:
    """How a RUN step with `--network=mode` (or the build's --network) is connected."""
    if mode not in MODES:
        raise InvalidArgument(f"network mode {mode!r} not supported for RUN (use default, host or none)")
    network = sandbox.networks.get(mode)
    if network is None:
        if mode == "none":
            network = RunNetwork(loopback_namespace(sandbox), "", HOSTS)
        elif mode == "host":
            network = RunNetwork(None, _host_resolv_conf(), HOSTS)
        else:
            network = bridge_network(sandbox)
        sandbox.networks[mode] = network
    return network


def bridge_network(sandbox: Sandbox) -> RunNetwork:
    """A namespace on the default bridge, from the monitor. Its fd comes with the reply (the monitor's pin
    is not visible in the build's private mount namespace) and is bind-mounted in the build's scratch dir."""
    if sandbox.monitor is None:
        raise HostError("RUN on the default network needs the monitor (use --network=host or none)")
    stream = sandbox.monitor().open({"op": "build_network"})
    sandbox.hold(stream)  # closed with the sandbox: the monitor then takes the namespace down
    if len(stream.fds) != 1:
        raise HostError("the monitor lent no network namespace for RUN")
    path = os.path.join(sandbox.dir, "netns-bridge")
    try:
        open(path, "w").close()
        sandbox.mount(f"/proc/self/fd/{stream.fds[0]}", path, None, MS_BIND)
    finally:
        os.close(stream.fds[0])
    return RunNetwork(path, stream.reply["resolv_conf"], HOSTS)


def loopback_namespace(sandbox: Sandbox) -> str:
    """A network namespace with only `lo`, up (as Docker's `none` gives), shared by the build's RUN steps.

    A forked child makes it and brings lo up; the namespace is kept by a bind mount in the build's private
    mount namespace, so it goes away with the build."""
    path = os.path.join(sandbox.dir, "netns-none")
    open(path, "w").close()
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    done_r, done_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:  # never returns into the build's code
        try:
            os.close(ready_r)
            os.close(done_w)
            from dockyard.runtime import syscalls as sc

            sc.unshare(sc.CLONE_NEWNET)
            _loopback_up()
            os.write(ready_w, b"1")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise HostError("could not make a network namespace for RUN --network=none")
        sandbox.mount(f"/proc/{pid}/ns/net", path, None, MS_BIND)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)
    return path


def _loopback_up() -> None:
    import fcntl
    import socket
    import struct

    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s, siocgifflags, request))[1]
        fcntl.ioctl(s, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))


def _host_resolv_conf() -> str:
    try:
        with open("/etc/resolv.conf") as f:
            return f.read()
    except OSError:
        return ""
