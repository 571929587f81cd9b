"""The image a build stage is making, step by step: its layers, its config and its history.

A stage starts from its base (an image's config and layers, an earlier stage's state, or nothing for scratch)
and each step either adds a layer (RUN, COPY, ADD, WORKDIR making a directory) or changes the config. Nothing
here touches the store: `executor` commits the final state as an image.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from dockyard.image.model import Descriptor, chain_ids

HISTORY_COMMENT = "buildkit.dockerfile.v0"  # BuildKit's; tools read it to tell build steps apart


@dataclass(frozen=True)
class Layer:
    descriptor: Descriptor  # the blob (uncompressed for built layers; as pulled for base layers)
    diff_id: str


@dataclass
class ImageState:
    layers: list[Layer] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # the image config's "config" object
    history: list[dict[str, Any]] = field(default_factory=list)
    author: str = ""
    base_id: str | None = None  # the image it was built FROM (None: scratch or a stage)
    cmd_set: bool = False  # CMD given in this stage (ENTRYPOINT then keeps it)

    @classmethod
    def from_image(cls, image_id: str, config: dict[str, Any], layers: list[Layer]) -> ImageState:
        history = list(config.get("history") or [])
        return cls(layers=list(layers), config=copy.deepcopy(config.get("config") or {}), history=history,
                   author=config.get("author") or "", base_id=image_id)

    def derive(self) -> ImageState:
        """A copy for a stage built FROM this one."""
        return ImageState(list(self.layers), copy.deepcopy(self.config), [dict(h) for h in self.history],
                          self.author, None, False)

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    @property
    def chain_id(self) -> str:
        """The chain id of the top layer; "" when there are no layers."""
        chains = chain_ids(self.diff_ids)
        return chains[-1] if chains else ""

    def add_history(self, created_by: str, *, empty: bool, created: str | None = None) -> None:
        """`created` None: filled in when the image is committed (see executor)."""
        entry: dict[str, Any] = {"created": created, "created_by": created_by, "comment": HISTORY_COMMENT}
        if empty:
            entry["empty_layer"] = True
        self.history.append(entry)

    def add_layer(self, layer: Layer, created_by: str, created: str | None) -> None:
        self.layers.append(layer)
        self.add_history(created_by, empty=False, created=created)
