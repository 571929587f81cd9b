"""Go's notion of whitespace, which the Dockerfile grammar is defined by.

Python's str.isspace() is wider (it accepts \\x1c-\\x1f), so the parser uses these instead to split words and
trim lines exactly where Docker does.
"""

from __future__ import annotations

import re

# unicode.IsSpace: the Latin-1 spaces plus the White_Space property above U+00FF.
_GO_SPACES = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                       "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
_GO_SPACE_CLASS = "".join(sorted(_GO_SPACES))

# The separator Docker splits instruction arguments on (`[\t\v\f\r ]+`; a logical line has no \n).
WHITESPACE_RUN = re.compile(r"[\t\v\f\r ]+")


def is_space(ch: str) -> bool:
    return ch in _GO_SPACES


def trim_space(text: str) -> str:
    """strings.TrimSpace."""
    return text.strip(_GO_SPACE_CLASS)


def trim_left_space(text: str) -> str:
    return text.lstrip(_GO_SPACE_CLASS)


def split_whitespace(text: str, maxsplit: int = 0) -> list[str]:
    """regexp.Split on [\\t\\v\\f\\r ]+ (empty leading/trailing fields kept, as Go's does)."""
    return WHITESPACE_RUN.split(text, maxsplit=maxsplit)
