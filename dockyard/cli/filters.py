"""`--filter key=value` flags, as every list command takes them."""

from __future__ import annotations

from dockyard.errors import InvalidArgument


def parse_filters(values: list[str] | None, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    """-f key=value flags, grouped by key; an unknown key is an error, as with docker."""
    filters: dict[str, list[str]] = {}
    for value in values or []:
        key, eq, arg = value.partition("=")
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {value}")
        if key not in allowed:
            raise InvalidArgument(f"invalid filter '{key}'")
        filters.setdefault(key, []).append(arg)
    return filters
