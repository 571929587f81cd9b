"""The engine: one object that owns the store and the services over it, built from a root directory."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from dockyard.config import run_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService
    from dockyard.engine.monitor.client import MonitorClient
    from dockyard.engine.volumes import VolumeService
    from dockyard.store.store import Store


class Engine:
    """Services are built on first use, so a command pays only for what it touches."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.run_root = run_root(root)

    @cached_property
    def store(self) -> Store:
        from dockyard.store.store import Store

        return Store(self.root)

    @cached_property
    def images(self) -> ImageService:
        from dockyard.engine.images import ImageService

        service = ImageService(self.store)
        service.users_of = lambda image_id: self.containers.records.users_of_image(image_id)
        return service

    @cached_property
    def containers(self) -> ContainerService:
        from dockyard.engine.containers import ContainerService

        return ContainerService(self)

    @cached_property
    def volumes(self) -> VolumeService:
        from dockyard.engine.volumes import VolumeService

        service = VolumeService(self.root, self.store.db)
        service.in_use = lambda name: self.containers.volume_users(name)
        return service

    def monitor(self) -> MonitorClient:
        from dockyard.engine.monitor.client import MonitorClient

        return MonitorClient(str(self.root), str(self.run_root))

    def monitor_alive(self) -> bool:
        from dockyard.engine.monitor.client import monitor_alive

        return monitor_alive(str(self.run_root))

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
