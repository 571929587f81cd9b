"""Go duration strings ("1h30m", "90s", "500ms"), as Docker's flags and filters take them."""

from __future__ import annotations

from dockyard.errors import InvalidArgument

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)"  # compiled on first use: most commands never need it


def parse_time(value: str | None) -> float | None:
    """A point in time as Docker's --since/--until/until= take it: unix seconds, RFC 3339, or a duration ago."""
    if value is None:
        return None
    import time

    from dockyard.timeutil import parse_rfc3339

    try:
        return float(value)
    except ValueError:
        pass
    parsed = parse_rfc3339(value)
    if parsed is not None:
        return parsed
    return time.time() - parse_duration(value)


def parse_duration(text: str) -> float:
    """Seconds in a Go duration; a bare number is seconds."""
    value = text.strip()
    sign = -1.0 if value.startswith("-") else 1.0
    value = value.lstrip("+-")
    if value in ("0", ""):
        if value == "":
            raise InvalidArgument(f"invalid duration {text!r}")
        return 0.0
    try:
        return sign * float(value)
    except ValueError:
        pass
    total, pos = 0.0, 0
    import re

    for m in re.finditer(_PART, value):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(value):
        raise InvalidArgument(f"invalid duration {text!r}: use a number with a unit, e.g. 10s, 5m, 1h30m")
    return sign * total
