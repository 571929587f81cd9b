"""Here-documents: finding `<<EOF` markers in an instruction line and what each marker means.

A marker is a word `[n]<<[-]WORD` (blanks allowed after `<<`). `-` strips leading tabs from the body and from
the terminator line; quoting any part of WORD (`<<"EOF"`, `<<'EOF'`, `<<E"O"F`) turns off variable expansion
of the body, like a shell. Docker always scans the line with `\\` as the escape character here, whatever the
file's escape directive says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.build.errors import DockerfileError
from dockyard.build.shell_lex import Lexer, LexError

# Go's \d and \s are ASCII-only; spelled out.
_MARKER = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)

_LINE_SCAN = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
_WORD = Lexer("\\", skip_unset=True)
_WORD_RAW = Lexer("\\", skip_unset=True, raw_quotes=True)
_NO_ENV: dict[str, str] = {}


@dataclass(frozen=True)
class Heredoc:
    """One here-document: its marker and the body lines that followed the instruction."""

    name: str  # the delimiter word, quotes removed
    content: str = ""  # the body as written, every line with its newline
    expand: bool = True  # False when the delimiter was quoted
    chomp: bool = False  # `<<-`: leading tabs are stripped
    fd: int = 0  # `3<<EOF` -> 3 (0 when absent)

    @property
    def text(self) -> str:
        """The body with `<<-` tab stripping applied."""
        return strip_leading_tabs(self.content) if self.chomp else self.content


def strip_leading_tabs(text: str) -> str:
    return _LEADING_TABS.sub("", text)


def parse_marker(word: str) -> Heredoc | None:
    """The heredoc a single word declares, or None when the word is not a heredoc marker."""
    m = _MARKER.fullmatch(word)
    if m is None or not m.group(3):
        return None
    rest = m.group(3)
    try:
        words = _WORD.expand_words(rest, _NO_ENV)
        raw = _WORD_RAW.expand_words(rest, _NO_ENV)
    except LexError as e:
        raise DockerfileError(e.reason) from None
    if len(words) != 1:
        return None  # `<<EOF bash` inside one word: not a plain marker
    if len(raw) != len(words):
        raise DockerfileError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = _count_quotes(words[0]), _count_quotes(raw[0])
    return Heredoc(name=words[0], expand=quotes[0] == quotes[1], chomp=m.group(2) == "-",
                   fd=int(m.group(1)) if m.group(1) else 0)


def _count_quotes(text: str) -> int:
    return text.count("'") + text.count('"')


def markers_in_line(line: str) -> list[Heredoc]:
    """Every heredoc marker of an instruction line, in order. A line that cannot be lexed has none."""
    try:
        words = _LINE_SCAN.expand_words(line, _NO_ENV)
    except LexError:
        return []
    markers = []
    for word in words:
        marker = parse_marker(word)
        if marker is not None:
            markers.append(marker)
    return markers
