"""What networking leaves in the kernel, counted from outside (ip, nft, iptables), and small test tools."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import time

from tests.conftest import CLI


def links(prefix: str = "") -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]
    return [n for n in names if n.startswith(prefix)]


def nft_tables(bridge: str) -> list[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.endswith(" dockyard_" + bridge.replace("-", "_"))]


def forward_rules(bridge: str) -> list[str]:
    out = subprocess.run(["iptables", "-w", "-S", "FORWARD"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if f'"dockyard {bridge}"' in line]


def port_map(bridge: str) -> str:
    return subprocess.run(["nft", "list", "table", "ip", "dockyard_" + bridge.replace("-", "_")],
                          capture_output=True, text=True).stdout


def pins(cli: CLI) -> list[str]:
    directory = cli.root / "run" / "netns"
    return sorted(os.listdir(directory)) if directory.exists() else []


def pin_mounts(cli: CLI) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if str(cli.root / "run" / "netns") in line.split()[4]]


def bridge_of(cli: CLI, network: str = "bridge") -> str:
    return json.loads(cli.out("network", "inspect", network))[0]["Options"]["com.docker.network.bridge.name"]


def inspect(cli: CLI, name: str) -> dict:
    return json.loads(cli.out("inspect", name))[0]


def free_port() -> int:
    """A random high port nothing listens on now (other engineers run tests here too)."""
    for _ in range(100):
        port = random.randint(30000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port
    raise AssertionError("no free port")


def random_subnet() -> str:
    return f"10.214.{random.randint(0, 255)}.0/24"


def http_get(host: str, port: int, path: str = "/", timeout: float = 5.0) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def http_ready(host: str, port: int, path: str = "/") -> bytes | None:
    try:
        return http_get(host, port, path, timeout=1.0)
    except OSError:
        return None


def stop_monitor(cli: CLI) -> None:
    """Ask the monitor to exit and wait until it has (it takes its networks down on the way out)."""
    sock_path = cli.root / "run" / "monitor.sock"
    lock = cli.root / "run" / "monitor.lock"
    pid = int(lock.read_text() or 0) if lock.exists() else 0
    if sock_path.exists():
        from dockyard.engine.monitor import protocol

        try:
            protocol.request(str(sock_path), {"op": "shutdown"})
        except OSError:
            pass
    if pid:
        wait_for(lambda: not os.path.exists(f"/proc/{pid}") or
                 open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", timeout=20)


def monitor_pid(cli: CLI) -> int:
    return int((cli.root / "run" / "monitor.lock").read_text())
