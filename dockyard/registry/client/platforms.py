"""Choosing an image for a platform from an index (manifest list), as `pull --platform` does."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.errors import InvalidArgument, NotFound
from dockyard.image.model import Descriptor, host_platform

_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386", "i686": "386"}
# The variant an architecture means when none is written.
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platform(text: str | None) -> Platform:
    """'linux/arm64/v8', 'linux/amd64', 'arm64' (os linux) -> Platform; None -> the host's platform."""
    if not text:
        return Platform(*host_platform())
    parts = text.strip().lower().split("/")
    if len(parts) == 1:
        parts = ["linux", parts[0]]
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os[/arch[/variant]]")
    arch = _ARCH_ALIASES.get(parts[1], parts[1])
    return Platform(parts[0], arch, parts[2] if len(parts) == 3 else None)


def _variant(platform: Platform) -> str | None:
    return platform.variant or _DEFAULT_VARIANT.get(platform.architecture)


def choose(entries: list[Descriptor], wanted: Platform) -> Descriptor:
    """The index entry for `wanted`: os and architecture must match, and the variant when both name one."""
    candidates = []
    for entry in entries:
        p = entry.platform or {}
        arch = _ARCH_ALIASES.get(str(p.get("architecture", "")), str(p.get("architecture", "")))
        if p.get("os") != wanted.os or arch != wanted.architecture:
            continue
        have = Platform(wanted.os, arch, p.get("variant"))
        if wanted.variant is not None and _variant(have) != _variant(wanted):
            continue
        candidates.append((_variant(have) == _variant(wanted), entry))
    if not candidates:
        raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")
    # Prefer the entry whose variant matches the default for the architecture.
    candidates.sort(key=lambda c: not c[0])
    return candidates[0][1]
