"""Times as Docker writes them: RFC 3339 with nanoseconds, parsed back from any number of fraction digits."""

from __future__ import annotations

import time


def rfc3339(timestamp: float | None = None) -> str:
    """2024-01-02T15:04:05.123456789Z"""
    t = time.time() if timestamp is None else timestamp
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(round(t % 1 * 1e9)) % 1000000000:09d}Z"


def parse_rfc3339(text: str | None) -> float | None:
    """Seconds since the epoch, or None for an empty or unreadable time."""
    if not text:
        return None
    from datetime import datetime  # here: most commands never parse a time

    try:
        main, _, rest = text.partition(".")
        if rest:
            digits = "".join(c for c in rest if c.isdigit())
            zone = rest[len(digits):]
            text = f"{main}.{digits[:6]}{zone}"
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def human_duration(seconds: float) -> str:
    """Docker's units.HumanDuration ('About a minute', '3 weeks')."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"
