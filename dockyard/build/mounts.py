"""`RUN --mount=type=...,key=value,...` specifications.

A spec is a CSV record of `key=value` fields (and a few bare keywords: `ro`, `rw`, `required`). Values may use
build variables, so a spec is parsed twice: at parse time without expansion (to reject what can never work,
such as a variable in `from=`), and again when the RUN step is evaluated, with its variables.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from dockyard.build.errors import DockerfileError

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_KEYS = ("type", "from", "source", "src", "target", "dst", "destination", "readonly", "ro", "readwrite", "rw",
         "required", "size", "id", "sharing", "mode", "uid", "gid", "env")
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}

Expander = Callable[[str], str]


@dataclass(frozen=True)
class Mount:
    type: str = "bind"
    source: str | None = None  # path inside `from` (or the context); for secret/ssh, the id's alias
    target: str | None = None  # path in the container; relative to WORKDIR when not absolute
    from_: str | None = None  # a stage name/index or an image; the context when None
    readonly: bool = True
    size: int | None = None  # tmpfs limit in bytes
    id: str | None = None  # cache id (defaults to the target) or secret/ssh id
    sharing: str | None = None  # cache: shared (default), private, locked
    required: bool = False  # secret/ssh: fail when it is not provided
    env: str | None = None  # secret: expose as this environment variable
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def split_fields(spec: str) -> list[str]:
    try:
        rows = list(csv.reader([spec], strict=True))
    except csv.Error as e:
        raise DockerfileError(f"failed to parse csv mounts: {e}") from None
    return rows[0] if rows else []


def mentions_variables(spec: str) -> bool:
    return "$" in spec


def check_unexpanded(spec: str) -> None:
    """Parse-time check: `from=` cannot use variables (Docker's rule; use a stage alias instead)."""
    for field in split_fields(spec):
        key, eq, value = field.partition("=")
        if eq and key.lower() == "from":
            idx = value.find("$")
            if idx != -1 and idx != len(value) - 1:
                raise DockerfileError(f"'{key.lower()}' doesn't support variable expansion, "
                                      "define alias stage instead")


def parse_mount(spec: str, expand: Expander | None = None) -> Mount:
    """A mount from its spec; `expand` substitutes variables in each value."""
    fields: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for field in split_fields(spec):
        key, eq, value = field.partition("=")
        key = key.lower()
        if not eq:
            if key in ("readonly", "ro"):
                fields["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                fields["readonly"], ro_auto = False, False
            elif key == "required":
                _require_secretish(fields, key)
                fields["required"] = True
            else:
                raise DockerfileError(f"invalid field '{field}' must be a key=value pair")
            continue
        if expand is not None:
            value = expand(value)
        if key in ("readonly", "ro", "readwrite", "rw"):
            flag = _go_bool(key, value)
            fields["readonly"] = flag if key in ("readonly", "ro") else not flag
            ro_auto = False
        else:
            _set_field(fields, key, field, value)
    mount = Mount(**{("from_" if k == "from" else k): v for k, v in fields.items()})  # type: ignore[arg-type]
    if ro_auto:
        mount = replace(mount, readonly=mount.type not in ("cache", "tmpfs"))
    _validate(mount)
    return mount


def _set_field(fields: dict[str, object], key: str, field: str, value: str) -> None:
    if key == "type":
        kind = value.lower()
        if kind not in MOUNT_TYPES:
            raise DockerfileError(f"unsupported mount type {value!r}")
        fields["type"] = kind
    elif key == "from":
        fields["from"] = value
    elif key in ("source", "src"):
        fields["source"] = value
    elif key in ("target", "dst", "destination"):
        fields["target"] = value
    elif key == "required":
        _require_secretish(fields, key)
        fields["required"] = _go_bool(key, value)
    elif key == "size":
        if fields["type"] != "tmpfs":
            raise DockerfileError(f"unexpected key '{key}' for mount type '{fields['type']}'")
        fields["size"] = _ram_bytes(key, value)
    elif key == "id":
        fields["id"] = value
    elif key == "sharing":
        sharing = value.lower()
        if sharing not in SHARING_MODES:
            raise DockerfileError(f"unsupported sharing value {value!r}")
        fields["sharing"] = sharing
    elif key == "mode":
        fields["mode"] = _uint(value, 8, "mode")
    elif key in ("uid", "gid"):
        fields[key] = _uint(value, 10, key)
    elif key == "env":
        fields["env"] = value
    else:
        raise DockerfileError(f"unexpected key '{key}' in '{field}'")


def _require_secretish(fields: dict[str, object], key: str) -> None:
    if fields["type"] not in ("secret", "ssh"):
        raise DockerfileError(f"unexpected key '{key}' for mount type '{fields['type']}'")


def _validate(m: Mount) -> None:
    if m.type not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if getattr(m, name) is not None:
                raise DockerfileError(f"{name} not allowed for {m.type!r} type mounts")
    if m.type == "secret":
        if m.from_ is not None:
            raise DockerfileError("secret mount should not have a from")
        if m.sharing is not None:
            raise DockerfileError("secret mount should not define sharing")
        if not m.source and not m.target and not m.id:
            raise DockerfileError("invalid secret mount. one of source, target required")
        if m.source and m.id:
            raise DockerfileError("both source and id can't be set")
    if m.sharing is not None and m.type != "cache":
        raise DockerfileError(f"invalid cache sharing set for {m.type} mount")


def _go_bool(key: str, text: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise DockerfileError(f"invalid value for {key}: {text}")


def _uint(text: str, base: int, what: str) -> int:
    try:
        value = int(text, base)
    except ValueError:
        value = -1
    if not text or not text.isascii() or not text.isalnum() or value < 0 or value > 0xFFFFFFFF:
        raise DockerfileError(f"invalid value {text} for {what}")
    return value


def _ram_bytes(key: str, text: str) -> int:
    """docker/go-units RAMInBytes: `64m`, `1g`, `512k`, `1024` (binary multiples)."""
    m = _SIZE.fullmatch(text.strip())
    if m is None:
        raise DockerfileError(f"invalid value for {key}: {text}")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
