"""Config changes given as Dockerfile instructions: `import --change` and `commit --change`.

Only the instructions that change the config are allowed here (Docker's list): CMD, ENTRYPOINT, ENV, EXPOSE,
LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from dockyard.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR")


def _json_or_shell(text: str) -> list[str]:
    """Exec form when the text is a JSON array of strings; otherwise shell form under /bin/sh -c."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            value = json.loads(stripped)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", stripped]


def _pairs(instruction: str, text: str) -> list[tuple[str, str]]:
    """KEY=VALUE pairs (quotes allowed), or the legacy `KEY VALUE` form with one pair."""
    words = shlex.split(text, posix=True)
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        key, _, value = text.strip().partition(" ")
        if not value.strip():
            raise InvalidArgument(f"{instruction} {key} needs a value: use {instruction} {key}=VALUE")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"{instruction} expects KEY=VALUE pairs, got {word!r}")
        pairs.append((key, value))
    return pairs


def _set_env(env: list[str], key: str, value: str) -> list[str]:
    return [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return a copy of an image's `config` section with each change applied, in order."""
    config = json.loads(json.dumps(config))
    for change in changes:
        instruction, _, text = change.strip().partition(" ")
        instruction = instruction.upper()
        text = text.strip()
        if instruction not in ALLOWED:
            raise InvalidArgument(f"{instruction or change!r} is not a valid change command (allowed: "
                                  f"{', '.join(ALLOWED)})")
        if not text and instruction not in ("CMD", "ENTRYPOINT"):
            raise InvalidArgument(f"{instruction} requires at least one argument")
        if instruction == "CMD":
            config["Cmd"] = _json_or_shell(text)
        elif instruction == "ENTRYPOINT":
            config["Entrypoint"] = _json_or_shell(text)
        elif instruction == "ENV":
            env = config.get("Env") or []
            for key, value in _pairs("ENV", text):
                env = _set_env(env, key, value)
            config["Env"] = env
        elif instruction == "LABEL":
            labels = config.get("Labels") or {}
            labels.update(_pairs("LABEL", text))
            config["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = config.get("ExposedPorts") or {}
            for port in text.split():
                number, _, proto = port.partition("/")
                if not number.replace("-", "").isdigit() or proto not in ("", "tcp", "udp", "sctp"):
                    raise InvalidArgument(f"invalid port {port!r} in EXPOSE")
                ports[f"{number}/{proto or 'tcp'}"] = {}
            config["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            volumes = config.get("Volumes") or {}
            paths = _json_or_shell(text)
            for path in (paths if paths[:2] != ["/bin/sh", "-c"] else text.split()):
                volumes[path] = {}
            config["Volumes"] = volumes
        elif instruction == "ONBUILD":
            config["OnBuild"] = (config.get("OnBuild") or []) + [text]
        elif instruction == "WORKDIR":
            config["WorkingDir"] = text
        elif instruction == "USER":
            config["User"] = text
        elif instruction == "STOPSIGNAL":
            config["StopSignal"] = text
    return config
