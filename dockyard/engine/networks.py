"""Container networking: the seam between the monitor and whatever gives a container its network.

The monitor calls `attach` before it creates a container's init and `detach` after the init has exited (also
when it finds, at start-up, containers a dead monitor left behind), so everything attach makes is undone.

This first version gives each container what `--network none` gives (a fresh namespace with only loopback),
joins `container:NAME` to that container's namespace, and leaves `host` in the host's namespace.
"""

from __future__ import annotations

from dockyard.engine.container_store import ContainerRecord
from dockyard.errors import Conflict


class NetworkService:
    def __init__(self, engine) -> None:
        self.engine = engine

    def attach(self, record: ContainerRecord) -> str | None:
        """Prepare the container's network; returns a network namespace path to join, or None for a new one.

        (With HostConfig.NetworkMode "host" the spec keeps the host's namespace whatever this returns.)
        """
        mode = record.data["HostConfig"].get("NetworkMode") or "default"
        if mode.startswith("container:"):
            other = self.engine.containers.get(mode.split(":", 1)[1])
            if not other.running:
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            return f"/proc/{other.state['Pid']}/ns/net"
        return None

    def detach(self, record: ContainerRecord) -> None:
        """Undo what attach made (nothing yet)."""
