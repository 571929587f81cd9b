"""The engine: one object that owns the store and the services over it, built from a root directory."""

from __future__ import annotations

from dockyard.config import run_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

    from dockyard.engine.containers import ContainerService
    from dockyard.engine.images import ImageService
    from dockyard.engine.monitor.client import MonitorClient
    from dockyard.engine.networks import NetworkService
    from dockyard.engine.volumes import VolumeService
    from dockyard.store.metadata import Database
    from dockyard.store.store import Store


class cached_property:  # noqa: N801 - functools.cached_property's name and behaviour
    """functools.cached_property without importing functools, which imports collections (namedtuple): ~1-2 ms
    of every command's start-up. The value lands in the instance's __dict__, which then shadows this."""

    def __init__(self, function) -> None:
        self.function = function
        self.name = function.__name__
        self.__doc__ = function.__doc__

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = instance.__dict__[self.name] = self.function(instance)
        return value


class Engine:
    """Services are built on first use, so a command pays only for what it touches."""

    def __init__(self, root: str | Path) -> None:
        self.root_dir = str(root)
        self.run_root = run_root(self.root_dir)

    @cached_property
    def root(self) -> Path:
        from pathlib import Path

        return Path(self.root_dir)

    @cached_property
    def db(self) -> Database:
        """The metadata database alone: enough for commands that only read records (ps, images...)."""
        import os

        from dockyard.store.metadata import Database

        os.makedirs(self.root_dir, exist_ok=True)
        return Database(os.path.join(self.root_dir, "metadata.db"))

    @cached_property
    def store(self) -> Store:
        from dockyard.store.store import Store

        return Store(self.root, self.db)

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

        service = VolumeService(self.root_dir, self.db)
        service.in_use = lambda name: self.containers.volume_users(name)
        return service

    @cached_property
    def networks(self) -> NetworkService:
        from dockyard.engine.networks import NetworkService

        return NetworkService(self)

    def monitor(self) -> MonitorClient:
        from dockyard.engine.monitor.client import MonitorClient

        return MonitorClient(self.root_dir, self.run_root)

    def monitor_alive(self) -> bool:
        from dockyard.engine.monitor.endpoint import monitor_alive

        return monitor_alive(self.run_root)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
        elif "db" in self.__dict__:
            self.db.close()
