"""Parsing `-v` binds and `--mount` specs (API HostConfig.Binds / HostConfig.Mounts) into inspect's Mounts."""

from __future__ import annotations

import os
from typing import Any

from dockyard.errors import InvalidArgument

BIND_MODES = {"ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave", "rslave", "private", "rprivate",
              "consistent", "cached", "delegated"}
PROPAGATIONS = {"shared", "rshared", "slave", "rslave", "private", "rprivate"}


def _check_destination(dest: str, spec: str) -> str:
    if not dest.startswith("/"):
        raise InvalidArgument(f"invalid mount config: the destination of {spec!r} must be an absolute path")
    if os.path.normpath(dest) == "/":
        raise InvalidArgument(f"invalid mount config: {spec!r} would mount over the container's root")
    return os.path.normpath(dest)


def parse_bind(spec: str) -> dict[str, Any]:
    """"src:dst[:opts]": an absolute src is a host path (made if missing, as Docker does), else a volume name."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    source, dest = parts[0], _check_destination(parts[1], spec)
    modes = [m for m in (parts[2].split(",") if len(parts) == 3 else []) if m]
    for mode in modes:
        if mode not in BIND_MODES:
            raise InvalidArgument(f"invalid mode: {mode}")
    rw = "ro" not in modes
    propagation = next((m for m in modes if m in PROPAGATIONS), "")
    if source.startswith("/"):
        if not os.path.exists(source):
            os.makedirs(source, mode=0o755)
        return {"Type": "bind", "Source": os.path.normpath(source), "Destination": dest,
                "Mode": ",".join(modes), "RW": rw, "Propagation": propagation or "rprivate"}
    if source.startswith(".") or "/" in source:
        raise InvalidArgument(f"invalid volume specification: '{spec}': {source} is a relative host path; "
                              f"use an absolute path (and it must exist)")
    return {"Type": "volume", "Name": source, "Source": "", "Destination": dest, "Driver": "local",
            "Mode": ",".join(modes), "RW": rw, "Propagation": ""}


def parse_mount(spec: dict[str, Any]) -> dict[str, Any]:
    """One entry of HostConfig.Mounts (what `--mount type=...,source=...,target=...` becomes)."""
    kind = spec.get("Type") or "volume"
    target = spec.get("Target") or ""
    if not target:
        raise InvalidArgument("invalid mount config: Target is required")
    dest = _check_destination(target, target)
    read_only = bool(spec.get("ReadOnly"))
    source = spec.get("Source") or ""
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f'invalid mount config for type "bind": invalid mount path: \'{source}\' '
                                  f"mount path must be absolute")
        if not os.path.exists(source):
            raise InvalidArgument(f'invalid mount config for type "bind": bind source path does not exist: '
                                  f"{source}")
        propagation = (spec.get("BindOptions") or {}).get("Propagation") or "rprivate"
        return {"Type": "bind", "Source": os.path.normpath(source), "Destination": dest, "Mode": "",
                "RW": not read_only, "Propagation": propagation}
    if kind == "volume":
        return {"Type": "volume", "Name": source or None, "Source": "", "Destination": dest, "Driver": "local",
                "Mode": "", "RW": not read_only, "Propagation": ""}
    if kind == "tmpfs":
        if source:
            raise InvalidArgument('invalid mount config for type "tmpfs": source must not be specified')
        options = spec.get("TmpfsOptions") or {}
        parts = []
        if options.get("SizeBytes"):
            parts.append(f"size={int(options['SizeBytes'])}")
        if options.get("Mode"):
            parts.append(f"mode={int(options['Mode']):o}")
        if read_only:
            parts.append("ro")
        return {"Type": "tmpfs", "Source": "", "Destination": dest, "Mode": "", "RW": not read_only,
                "Propagation": "", "Options": ",".join(parts)}
    raise InvalidArgument(f"invalid mount config: mount type unknown: {kind!r}")
