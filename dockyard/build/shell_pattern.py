"""The glob patterns of `${var#pattern}`, `${var%pattern}` and `${var/pattern/replacement}`.

Only `*` (any run of characters) and `?` (one character) are special; `\\` quotes `*`, `?` and `\\`, and an
escaped `}` or `/` is just that character (the escape only kept it from closing the `${...}`). Bracket
expressions are not supported, as in Docker: `[` is literal. Patterns are turned into regular expressions;
the suffix forms run the prefix search on the reversed value with a reversed pattern, since a regex finds
leftmost matches only.
"""

from __future__ import annotations

import re

from dockyard.build.errors import LexError

_ESCAPABLE = "*?\\"


def pattern_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    out = ["^"] if anchored else []
    star = ".*" if greedy else ".*?"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            out.append(star)
        elif ch == "?":
            out.append(".")
        elif ch == "\\":
            if i < len(pattern) and pattern[i] in "}/":
                continue
            if i >= len(pattern) or pattern[i] not in _ESCAPABLE:
                bad = pattern[i] if i < len(pattern) else "EOF"
                raise LexError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{bad}'")
            out.append(re.escape(pattern[i]))
            i += 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out))


def _tokens(pattern: str) -> list[str]:
    """Split a pattern into units, keeping an escape with the character it quotes."""
    units, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            units.append(pattern[i:i + 2])
            i += 2
        else:
            units.append(pattern[i])
            i += 1
    return units


def reverse_pattern(pattern: str) -> str:
    return "".join(reversed(_tokens(pattern)))


def trim_prefix(pattern: str, value: str, *, greedy: bool) -> str:
    m = pattern_regex(pattern, greedy=greedy, anchored=True).match(value)
    return value[m.end():] if m else value


def trim_suffix(pattern: str, value: str, *, greedy: bool) -> str:
    return trim_prefix(reverse_pattern(pattern), value[::-1], greedy=greedy)[::-1]


_TEMPLATE_REF = re.compile(r"\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _expand_template(template: str, match: re.Match[str]) -> str:
    """Go's Regexp.Expand: `$$` is `$`, `$0`/`${0}` the match, any other name or number is empty
    (the pattern has no groups), and a `$` not followed by a name stays literal."""
    def ref(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        name = m.group(2) or m.group(3)
        return match.group(0) if name.isdigit() and int(name) == 0 else ""
    return _TEMPLATE_REF.sub(ref, template)


def replace(value: str, pattern: str, replacement: str, *, replace_all: bool) -> str:
    regex = pattern_regex(pattern, greedy=True, anchored=False)
    return regex.sub(lambda m: _expand_template(replacement, m), value, count=0 if replace_all else 1)
