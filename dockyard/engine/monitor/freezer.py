"""Pausing a container: the freezer cgroup (v1) or cgroup.freeze (v2) of the cgroups the runtime made."""

from __future__ import annotations

import os
import time

from dockyard.errors import HostError


def _cgroup_dirs(container_id: str, state_root: str) -> dict[str, str]:
    """hierarchy mount point -> the container's cgroup directory in it."""
    from dockyard.runtime import state

    return state.read_record(state_root, container_id).cgroups


def set_frozen(container_id: str, frozen: bool, state_root: str) -> None:
    dirs = _cgroup_dirs(container_id, state_root)
    v1 = next((path for mount, path in dirs.items() if "freezer" in os.path.basename(mount).split(",")), None)
    if v1:
        path = os.path.join(v1, "freezer.state")
        with open(path, "w") as f:
            f.write("FROZEN" if frozen else "THAWED")
        deadline = time.monotonic() + 5
        while frozen and time.monotonic() < deadline:
            with open(path) as f:
                if f.read().strip() == "FROZEN":
                    return
            time.sleep(0.005)
        if frozen:
            raise HostError(f"container {container_id} did not freeze")
        return
    for path in dirs.values():
        freeze = os.path.join(path, "cgroup.freeze")
        if os.path.exists(freeze):
            with open(freeze, "w") as f:
                f.write("1" if frozen else "0")
            return
    raise HostError("no freezer cgroup for this container")
