"""Where dockyard keeps its state. (Plain strings: pathlib is not worth its import time on the hot paths.)"""

from __future__ import annotations

import os

DEFAULT_ROOT = "/var/lib/dockyard"
DEFAULT_RUN_ROOT = "/run/dockyard"


def state_root(cli_value: str | None = None) -> str:
    """--root wins, then DOCKYARD_ROOT, then /var/lib/dockyard."""
    return os.path.abspath(cli_value or os.environ.get("DOCKYARD_ROOT") or DEFAULT_ROOT)


def run_root(root: str) -> str:
    """Runtime state (sockets, bundles, mounts): under /run for the default root, else beside the given root."""
    if os.environ.get("DOCKYARD_RUN_ROOT"):
        return os.environ["DOCKYARD_RUN_ROOT"]
    if root == DEFAULT_ROOT:
        return DEFAULT_RUN_ROOT
    return os.path.join(root, "run")
