"""Instruction flags (`COPY --from=x`, `RUN --mount=...`): splitting them off the line and validating them."""

from __future__ import annotations

from typing import Literal

from dockyard.build.errors import DockerfileError
from dockyard.build.gotext import is_space

FlagKind = Literal["bool", "string", "strings"]
FlagValue = bool | str | list[str]


def split_flags(line: str, escape: str) -> tuple[list[str], str]:
    """Leading `--name[=value]` words of an argument text, and the rest.

    Quotes inside a flag word group characters and are removed; the escape character quotes the next one.
    A bare `--` ends the flags.
    """
    flags: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and is_space(line[i]):
            i += 1
        if i == n:
            return flags, ""
        if not line.startswith("--", i):
            return flags, line[i:]
        word, blank_ok, i = _flag_word(line, i, escape)
        if word == "--":
            return flags, line[i:]
        if blank_ok or word:
            flags.append(word)


def _flag_word(line: str, i: int, escape: str) -> tuple[str, bool, int]:
    buf: list[str] = []
    quote = ""
    blank_ok = False
    n = len(line)
    while i < n:
        ch = line[i]
        if quote:
            if ch == quote:
                quote = ""
                i += 1
                continue
        elif is_space(ch):
            break
        elif ch in "'\"":
            quote, blank_ok = ch, True
            i += 1
            continue
        if ch == escape:
            if i + 1 == n:
                quote = ""
                i += 1
                continue
            i += 1
            ch = line[i]
        buf.append(ch)
        i += 1
    return "".join(buf), blank_ok, i


def parse_flags(raw: list[str], spec: dict[str, FlagKind]) -> dict[str, FlagValue]:
    """The flags that were given, by name, checked against what the instruction accepts.

    bool flags take `--x`, `--x=true` or `--x=false`; string flags need `=value`; `strings` flags may repeat.
    """
    used: dict[str, FlagValue] = {}
    for arg in raw:
        if arg == "--":
            break
        if not arg.startswith("--"):
            raise DockerfileError(f"arg should start with -- : {arg}")
        flag, has_value, value = arg.partition("=")
        name = flag[2:]
        kind = spec.get(name)
        if kind is None:
            raise DockerfileError(f"unknown flag: {flag}")
        if name in used and kind != "strings":
            raise DockerfileError(f"duplicate flag specified: {flag}")
        if kind == "bool":
            if has_value and value == "":
                raise DockerfileError(f"missing a value on flag: {flag}")
            lowered = value.lower()
            if lowered not in ("true", "false", ""):
                raise DockerfileError(f"expecting boolean value for flag {flag}, not: {value}")
            used[name] = lowered != "false"
            continue
        if not has_value:
            raise DockerfileError(f"missing a value on flag: {flag}")
        if kind == "string":
            used[name] = value
        else:
            values = used.setdefault(name, [])
            assert isinstance(values, list)
            values.append(value)
    return used
