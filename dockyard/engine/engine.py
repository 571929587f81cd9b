"""The engine: one object that owns the store and the services over it, built from a root directory."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from dockyard.config import run_root

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dockyard.engine.images import ImageService
    from dockyard.store.store import Store


class Engine:
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

        return ImageService(self.store)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
