"""Go's time.ParseDuration, as HEALTHCHECK's --interval and friends take it: "30s", "1m30s", "300ms"."""

from __future__ import annotations

import re

from dockyard.build.errors import DockerfileError

NS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
      "m": 60_000_000_000, "h": 3_600_000_000_000}
_NUMBER = re.compile(r"([0-9]*)(?:\.([0-9]*))?")
_UNIT = re.compile(r"[^0-9.]*")
MAX_NS = 2**63 - 1


def parse_duration_ns(text: str) -> int:
    """Nanoseconds; a unit is required on every number except a lone "0"."""
    s = text
    negative = False
    if s[:1] in ("+", "-"):
        negative, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if s == "":
        raise DockerfileError(f"time: invalid duration {text!r}")
    total = 0
    while s:
        m = _NUMBER.match(s)
        assert m is not None
        whole, frac = m.group(1), m.group(2)
        if whole == "" and not frac:
            raise DockerfileError(f"time: invalid duration {text!r}")
        s = s[m.end():]
        unit_text = _UNIT.match(s).group(0)  # type: ignore[union-attr]
        if unit_text == "":
            raise DockerfileError(f"time: missing unit in duration {text!r}")
        unit = NS.get(unit_text)
        if unit is None:
            raise DockerfileError(f"time: unknown unit {unit_text!r} in duration {text!r}")
        s = s[len(unit_text):]
        total += int(whole or "0") * unit
        if frac:
            total += int(frac) * unit // 10 ** len(frac)
        if total > MAX_NS:
            raise DockerfileError(f"time: invalid duration {text!r}")
    return -total if negative else total
