"""Go's path/filepath.Match, which COPY/ADD wildcards follow.

    *        any run of characters except `/`
    ?        one character except `/`
    [abc] [a-z] [^a-z]   a character class (`^` negates); inside, `\\` escapes and `-`/`]` must be escaped
    \\c       the character c

The whole name must match. A malformed pattern (unclosed `[`, a trailing `\\`, a bare `-` in a class) is an
error, whether or not a name would have matched.
"""

from __future__ import annotations

import re
from functools import lru_cache

from dockyard.build.errors import BuildContextError

WILDCARD_CHARS = "*?["


class BadPattern(BuildContextError):
    pass


def has_wildcards(text: str) -> bool:
    """True when `text` has an unescaped `*`, `?` or `[` (a backslash hides the next character)."""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in WILDCARD_CHARS:
            return True
        i += 1
    return False


def match(pattern: str, name: str) -> bool:
    return compile_pattern(pattern).fullmatch(name) is not None


def check_pattern(pattern: str) -> None:
    compile_pattern(pattern)


@lru_cache(maxsize=512)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[":
            cls, i = _char_class(pattern, i + 1)
            out.append(cls)
        elif ch == "\\":
            if i + 1 >= n:
                raise _bad(pattern)
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out), re.DOTALL)


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    negate = i < len(pattern) and pattern[i] == "^"
    if negate:
        i += 1
    ranges: list[tuple[str, str]] = []
    while True:
        if i < len(pattern) and pattern[i] == "]" and ranges:
            i += 1
            break
        lo, i = _class_char(pattern, i)
        hi = lo
        if pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
        ranges.append((lo, hi))
    usable = [(lo, hi) for lo, hi in ranges if lo <= hi]  # Go accepts an inverted range; it matches nothing
    if not usable:
        return (r"[\s\S]" if negate else "(?!)"), i
    body = "".join(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in usable)
    return f"[{'^' if negate else ''}{body}]", i


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    """One (possibly escaped) character of a class; the class must go on after it."""
    n = len(pattern)
    if i >= n or pattern[i] in "-]":
        raise _bad(pattern)
    if pattern[i] == "\\":
        i += 1
        if i >= n:
            raise _bad(pattern)
    ch = pattern[i]
    i += 1
    if i >= n:
        raise _bad(pattern)
    return ch, i


def _bad(pattern: str) -> BadPattern:
    return BadPattern(f"syntax error in pattern {pattern!r}")
