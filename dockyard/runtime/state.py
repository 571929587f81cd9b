"""Container state on disk: one directory per container under the runtime's state root.

Layout of `<state_root>/<id>/`:
  state.json  the record below, written atomically (temp file + rename)
  exec.fifo   exists while the container is "created": its init blocks reading it until `start` writes a byte

The status is never stored, it is derived (as runc does): the init pid is checked against its recorded start
time (so a recycled pid is not mistaken for our init), and the fifo tells created from running.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.procfs import start_time as process_start_time  # noqa: F401 - part of this module's interface
from dockyard.procfs import state_letter as process_state_letter  # noqa: F401

OCI_VERSION = "1.0.2"
STATE_FILE = "state.json"
FIFO_NAME = "exec.fifo"

_ID_RE = re.compile(r"^[\w+\-.]+$")


def validate_id(container_id: str) -> str:
    if not container_id or not _ID_RE.match(container_id) or container_id in (".", "..") or len(container_id) > 1024:
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return container_id


class Record:
    """What the runtime remembers about a container between operations."""

    FIELDS = ("id", "bundle", "pid", "start_time", "created", "annotations", "cgroups", "created_cgroups", "config",
              "owns_pidns")

    def __init__(self, id: str, bundle: str, pid: int, start_time: int, created: str,
                 annotations: dict[str, str] | None = None, cgroups: dict[str, str] | None = None,
                 created_cgroups: list[str] | None = None, config: dict[str, Any] | None = None,
                 owns_pidns: bool = True) -> None:
        self.id, self.bundle, self.pid, self.created = id, bundle, pid, created
        self.start_time = start_time  # field 22 of /proc/<pid>/stat, to detect pid reuse
        self.annotations = annotations or {}
        self.cgroups = cgroups or {}  # hierarchy mount point -> absolute cgroup dir
        self.created_cgroups = created_cgroups or []  # dirs we made, removed on delete
        self.config = config or {}  # the spec, for exec defaults and hooks
        self.owns_pidns = owns_pidns

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.FIELDS}


def container_dir(state_root: str, container_id: str) -> str:
    return os.path.join(state_root, validate_id(container_id))


def fifo_path(state_root: str, container_id: str) -> str:
    return os.path.join(container_dir(state_root, container_id), FIFO_NAME)


def write_record(state_root: str, record: Record) -> None:
    path = os.path.join(container_dir(state_root, record.id), STATE_FILE)
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(record.to_json()).encode())
    finally:
        os.close(fd)
    os.rename(tmp, path)


def read_record(state_root: str, container_id: str) -> Record:
    path = os.path.join(container_dir(state_root, container_id), STATE_FILE)
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"container {container_id!r} does not exist") from None
    return Record(**data)


def make_container_dir(state_root: str, container_id: str) -> str:
    os.makedirs(state_root, mode=0o711, exist_ok=True)
    path = container_dir(state_root, container_id)
    try:
        os.mkdir(path, 0o711)
    except FileExistsError:
        raise Conflict(f"container with id {container_id!r} already exists") from None
    return path





def is_alive(record: Record) -> bool:
    """The init is ours and has not exited (a zombie counts as exited)."""
    if record.pid <= 0 or process_start_time(record.pid) != record.start_time:
        return False
    return process_state_letter(record.pid) not in (None, "Z", "X")


def status(state_root: str, record: Record) -> str:
    """created | running | paused (runc's extension, the freezer) | stopped."""
    if not is_alive(record):
        return "stopped"
    if os.path.exists(fifo_path(state_root, record.id)):
        return "created"
    from dockyard.runtime import cgroups

    return "paused" if cgroups.is_frozen(record.cgroups) else "running"


def oci_state(state_root: str, record: Record) -> dict[str, Any]:
    """The state document of the OCI runtime spec (runtime.md, "State")."""
    st = status(state_root, record)
    doc: dict[str, Any] = {
        "ociVersion": OCI_VERSION,
        "id": record.id,
        "status": st,
        "pid": record.pid if st != "stopped" else 0,
        "bundle": record.bundle,
    }
    if record.annotations:
        doc["annotations"] = record.annotations
    doc["created"] = record.created
    return doc


def list_ids(state_root: str) -> list[str]:
    try:
        names = os.listdir(state_root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(os.path.join(state_root, n, STATE_FILE)))
