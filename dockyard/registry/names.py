"""The distribution spec's grammar for repository names, tags and digests, checked before any becomes a path.

The server validates every name, tag and digest from a URL with these functions before touching the disk: a
name that passes cannot contain "..", a leading "/" or any character outside [a-z0-9._/-], and no name
component can start with "_", which keeps the server's own "_"-prefixed metadata directories unreachable.
"""

from __future__ import annotations

import re

NAME_MAX_LENGTH = 255
TAG_MAX_LENGTH = 128

_NAME = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_SHA256 = re.compile(r"sha256:[a-f0-9]{64}")
_ANY_DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


def is_valid_name(name: str) -> bool:
    return len(name) <= NAME_MAX_LENGTH and _NAME.fullmatch(name) is not None


def is_valid_tag(tag: str) -> bool:
    return _TAG.fullmatch(tag) is not None


def is_digest(text: str) -> bool:
    """Shaped like a digest (algorithm:encoded), whether or not the algorithm is supported."""
    return _ANY_DIGEST.fullmatch(text) is not None


def is_sha256(digest: str) -> bool:
    """A sha256 digest: the only algorithm stored here."""
    return _SHA256.fullmatch(digest) is not None
