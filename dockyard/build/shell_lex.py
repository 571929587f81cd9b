"""Dockerfile word expansion: variables, quotes and escapes, the way Docker's builder does them.

This is not a shell: no globbing, no command substitution, no arithmetic. It implements what the Dockerfile
reference defines for ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and ARG:

* `$name` and `${name}`; `${name:-word}` `${name-word}` `${name:+word}` `${name+word}` `${name:?msg}`
  `${name?msg}`; `${name#pat}` `${name##pat}` `${name%pat}` `${name%%pat}`; `${name/pat/repl}`
  `${name//pat/repl}`;
  positional (`$1`) and special (`$@`, `$?`...) parameters read as unset;
* single quotes keep everything literal; double quotes keep everything but `$`, and there the escape
  character only escapes `"`, `$` and itself;
* the escape character (`\\` or the file's `# escape=` token) makes the next character literal; a trailing one
  is dropped.

`expand_word` gives one string (spaces kept); `expand_words` splits into words on whitespace outside quotes,
after substitution, as Docker's ProcessWords does (a value's whitespace splits, a quoted value's does not).
Both report which names were looked up and found (`matched`) or not (`unmatched`), which the cache key and
undefined-variable warnings need.

Knobs mirror Docker's lexer: `raw_quotes` keeps quote characters in the output, `raw_escapes` keeps escape
characters, `skip_quotes` treats quotes as ordinary characters, `skip_unset` leaves references to unset names
as written (used to find heredoc markers and to print commands).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dockyard.build import shell_pattern
from dockyard.build.errors import LexError
from dockyard.build.gotext import is_space

__all__ = ["Expansion", "LexError", "Lexer"]

_SPECIAL_PARAMS = "@*#?-$!0"
_HEREDOC_SPACE = "\t\r "


@dataclass
class Expansion:
    result: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Lexer:
    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_quotes: bool = False
    skip_unset: bool = False

    def expand(self, word: str, env: Mapping[str, str]) -> Expansion:
        run = _Run(self, word, env)
        try:
            result, words = run.until(None, self.raw_escapes)
        except LexError as e:
            raise LexError(f"failed to process {word!r}: {e.reason}") from None
        return Expansion(result, words, run.matched, run.unmatched)

    def expand_word(self, word: str, env: Mapping[str, str]) -> str:
        return self.expand(word, env).result

    def expand_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        return self.expand(word, env).words


class _Words:
    """Accumulates whitespace-separated words; quoted or escaped characters never split."""

    def __init__(self) -> None:
        self.buf = ""
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if is_space(ch):
            if self.in_word and self.buf:
                self.words.append(self.buf)
                self.buf = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf += text
        self.in_word = True

    def finish(self) -> list[str]:
        # An empty quoted word ("") adds nothing, as in Docker.
        if self.buf:
            self.words.append(self.buf)
            self.buf = ""
        return self.words


class _Run:
    """One expansion: the scanner position and what was looked up."""

    def __init__(self, lex: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lex = lex
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lex.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    # -- scanning
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        if self.pos >= len(self.text):
            return ""
        ch = self.text[self.pos]
        self.pos += 1
        return ch

    def lookup(self, name: str) -> tuple[str, bool]:
        value = self.env.get(name)
        if value is None:
            self.unmatched.add(name)
            return "", False
        self.matched.add(name)
        return value, True

    # -- the grammar
    def until(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Expand up to (and consuming) `stop`, or to the end when stop is None."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._until(stop)
        finally:
            self.raw_escapes = saved

    def _until(self, stop: str | None) -> tuple[str, list[str]]:
        out: list[str] = []
        words = _Words()
        esc = self.lex.escape
        while (ch := self.peek()) != "":
            if stop is not None and ch == stop:
                self.next()
                return "".join(out), words.finish()
            if ch == "$":
                piece = self.dollar()
                out.append(piece)
                words.add_string(piece)  # a substituted value splits on its whitespace
                continue
            if ch == "<":
                piece = self.maybe_heredoc()
                out.append(piece)
                words.add_raw_string(piece)
                continue
            if not self.lex.skip_quotes and ch in "'\"":
                piece = self.single_quoted() if ch == "'" else self.double_quoted()
                out.append(piece)
                words.add_raw_string(piece)
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    out.append(ch)
                ch = self.next()
                if ch == "":
                    break  # a trailing escape character is dropped
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            out.append(ch)
        if stop is not None:
            raise LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.finish()

    def single_quoted(self) -> str:
        out = []
        quote = self.next()
        if self.lex.raw_quotes:
            out.append(quote)
        while True:
            ch = self.next()
            if ch == "":
                raise LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quoted(self) -> str:
        out = []
        quote = self.next()
        if self.lex.raw_quotes:
            out.append(quote)
        esc = self.lex.escape
        while True:
            ch = self.peek()
            if ch == "":
                raise LexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.lex.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == esc:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt == "":
                    continue  # the unterminated quote is reported next round
                if nxt in ('"', "$", esc):
                    ch = self.next()
            out.append(ch)

    def maybe_heredoc(self) -> str:
        """`<<` followed by blanks stays glued to the next word, so `<< EOF` is one word."""
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        spaces = []
        while self.peek() != "" and self.peek() in _HEREDOC_SPACE:
            spaces.append(self.next())
        return "<<" + "".join(spaces)

    def name(self) -> str:
        chars: list[str] = []
        while (ch := self.peek()) != "":
            if not chars and ch.isdecimal():
                while self.peek() != "" and self.peek().isdecimal():
                    chars.append(self.next())
                return "".join(chars)
            if not chars and ch in _SPECIAL_PARAMS:
                return self.next()
            if not (ch.isalpha() or ch.isdecimal() or ch == "_"):
                break
            chars.append(self.next())
        return "".join(chars)

    def dollar(self) -> str:
        self.next()  # the '$'
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.lookup(name)
            if not found and self.lex.skip_unset:
                return "$" + name
            return value
        self.next()  # the '{'
        first = self.peek()
        if first == "":
            raise LexError("syntax error: missing '}'")
        if first in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self.name()
        op = self.next()
        if op == "}":
            value, found = self.lookup(name)
            if not found and self.lex.skip_unset:
                return "${" + name + "}"
            return value
        if op == "":
            raise LexError("syntax error: missing '}'")
        if op == "/":
            return self.substitute(name)
        return self.modifier(name, op)

    def modifier(self, name: str, op: str) -> str:
        null_is_unset = op == ":"
        ops = op
        if null_is_unset:
            op = self.next()
            ops += op
        elif op not in "+-?#%":
            raise LexError(f"unsupported modifier ({ops}) in substitution")
        pattern_like = op in ("#", "%")
        if null_is_unset and pattern_like:
            raise LexError(f"unsupported modifier ({ops}) in substitution")
        try:
            word, _ = self.until("}", pattern_like)
        except LexError:
            if self.peek() == "":
                raise LexError("syntax error: missing '}'") from None
            raise
        value, found = self.lookup(name)
        if self.lex.skip_unset and not found:
            return "${" + name + ops + word + "}"
        empty = not found or (null_is_unset and value == "")
        if op == "-":
            return word if empty else value
        if op == "+":
            return "" if empty else word
        if op == "?":
            if not found:
                raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise LexError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if op in ("#", "%"):
            greedy = word.startswith(op)
            if greedy:
                word = word[1:]
            if op == "%":
                return shell_pattern.trim_suffix(word, value, greedy=greedy)
            return shell_pattern.trim_prefix(word, value, greedy=greedy)
        raise LexError(f"unsupported modifier ({ops}) in substitution")

    def substitute(self, name: str) -> str:
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.until("/", True)
        except LexError:
            if self.peek() == "":
                raise LexError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.until("}", True)
        except LexError:
            if self.peek() == "":
                raise LexError("syntax error: missing '}'") from None
            raise
        value, found = self.lookup(name)
        if self.lex.skip_unset and not found:
            return f"${{{name}/{pattern}/{replacement}}}"
        return shell_pattern.replace(value, pattern, replacement, replace_all=replace_all)
