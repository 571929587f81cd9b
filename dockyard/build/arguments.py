"""How each instruction's argument text is cut into arguments, before any variable expansion.

Docker has a handful of argument grammars (JSON-or-shell, whitespace lists, `key=value` pairs, quote-aware
words); each instruction uses one. Quotes and escapes are kept here: they are removed later, by word
expansion, in the instructions that expand.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from dockyard.build.errors import DockerfileError
from dockyard.build.gotext import is_space, split_whitespace, trim_left_space

NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    legacy: bool = False  # written `KEY value` rather than `KEY=value`


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("number out of range")  # Go's decoder refuses it, so it is not a JSON array
    return value


def parse_json_array(rest: str) -> list[str] | None:
    """The strings of a JSON array, or None when `rest` is not one (the shell form applies).

    An array holding anything but strings is an error, not a fallback, as in Docker.
    """
    text = trim_left_space(rest)
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise DockerfileError(NOT_STRINGS)
    return value


def maybe_json(rest: str) -> tuple[list[str], bool]:
    """RUN/CMD/ENTRYPOINT/SHELL: a JSON array, else the whole text as one shell command."""
    if rest == "":
        return [], False
    array = parse_json_array(rest)
    if array is not None:
        return array, True
    return [rest], False


def maybe_json_list(rest: str) -> tuple[list[str], bool]:
    """ADD/COPY/VOLUME: a JSON array, else whitespace-separated words (quotes are not special)."""
    array = parse_json_array(rest)
    if array is not None:
        return array, True
    return whitespace_list(rest), False


def whitespace_list(rest: str) -> list[str]:
    """FROM/EXPOSE: split on blanks."""
    if rest == "":
        return []
    return split_whitespace(rest)


def single(rest: str) -> list[str]:
    """USER/WORKDIR/MAINTAINER/STOPSIGNAL: the whole text is the one argument."""
    return [rest] if rest else []


def quoted_words(rest: str, escape: str) -> list[str]:
    """Blank-separated words where quotes and escaped characters do not split; quotes and escapes are kept."""
    words: list[str] = []
    buf: list[str] = []
    blank_ok = False  # a word that was quoted counts even when empty ("")
    quote = ""
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    quote = ""
                    i += 1
                    continue  # an escape at the very end is dropped
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
        elif is_space(ch):
            if blank_ok or buf:
                words.append("".join(buf))
            buf, blank_ok = [], False
        else:
            if ch in "'\"":
                quote, blank_ok = ch, True
            elif ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
        i += 1
    if blank_ok or buf:
        words.append("".join(buf))
    return words


def name_values(rest: str, instruction: str, escape: str) -> list[KeyValue]:
    """ENV/LABEL: `KEY value with spaces` (legacy) or `K1=v1 K2="v 2" ...`."""
    words = quoted_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = split_whitespace(rest, 1)
        if len(parts) < 2:
            raise DockerfileError(f"{instruction} must have two arguments")
        return [KeyValue(parts[0], parts[1], legacy=True)]
    pairs = []
    for word in words:
        if "=" not in word:
            raise DockerfileError(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        key, _, value = word.partition("=")
        pairs.append(KeyValue(key, value))
    return pairs


def health_type(rest: str) -> tuple[str, str]:
    """HEALTHCHECK: the first word (NONE, CMD...) and the text after it."""
    end = 0
    while end < len(rest) and not is_space(rest[end]):
        end += 1
    start = end
    while start < len(rest) and is_space(rest[start]):
        start += 1
    return rest[:end], rest[start:]
