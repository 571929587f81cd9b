"""Templates: small recipes that make a base image from what this host has, LXC-style.

There is no Docker Hub here, so base images are made locally. A template is a module with:

* NAME and DESCRIPTION,
* `add_arguments(parser)` for its options,
* `reference(options) -> str`, the name the image gets (busybox:latest, debian:bookworm...),
* `write_layer(out, options, workdir)`, which writes the root file system as one uncompressed layer tar,
* `config(options) -> dict`, the image config's `config` section (Cmd, Env...),
* `created(options) -> float`, the image's creation time (fixed where the recipe is reproducible).

To add one, write such a module and list it in TEMPLATES.
"""

from __future__ import annotations

import importlib
from types import ModuleType

TEMPLATES = {
    "busybox": "dockyard.templates.busybox",
    "debian": "dockyard.templates.debian",
}


def load(name: str) -> ModuleType:
    from dockyard.errors import NotFound

    if name not in TEMPLATES:
        raise NotFound(f"no template named {name!r}; available: {', '.join(sorted(TEMPLATES))}")
    return importlib.import_module(TEMPLATES[name])
