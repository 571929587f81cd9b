"""Where dockyard keeps its state."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = "/var/lib/dockyard"
DEFAULT_RUN_ROOT = "/run/dockyard"


def state_root(cli_value: str | None = None) -> Path:
    """--root wins, then DOCKYARD_ROOT, then /var/lib/dockyard."""
    return Path(cli_value or os.environ.get("DOCKYARD_ROOT") or DEFAULT_ROOT).absolute()


def run_root(root: Path) -> Path:
    """Runtime state (pids, sockets, mounts): under /run for the default root, else beside the given root."""
    if os.environ.get("DOCKYARD_RUN_ROOT"):
        return Path(os.environ["DOCKYARD_RUN_ROOT"])
    if str(root) == DEFAULT_ROOT:
        return Path(DEFAULT_RUN_ROOT)
    return root / "run"
