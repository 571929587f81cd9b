"""Dockerfile parser: text in, typed instructions and stages out.

The line rules are Docker's:

* parser directives are recognised only at the very top (see `directives`);
* a line whose last non-blank character is the escape character continues on the next line (but an escaped
  escape character does not); the escape and the line break are removed, nothing else;
* a line starting with `#` (after blanks) is a comment, also in the middle of a continued instruction,
  where it is dropped; blank lines inside a continuation are dropped too (with a warning, as Docker gives);
* RUN/COPY/ADD (also under ONBUILD), in shell form, may open here-documents: the body lines follow the
  instruction up to the delimiter line and are taken verbatim.

Use `parse_dockerfile(text, path)`; it raises `DockerfileError` naming the file and line of the first problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from dockyard.build.directives import Directives, DirectiveScanner
from dockyard.build.errors import DockerfileError
from dockyard.build.gotext import trim_left_space, trim_space
from dockyard.build.heredoc import Heredoc, markers_in_line
from dockyard.build.instruction_parser import build, can_contain_heredoc, node_from_line
from dockyard.build.instructions import Arg, Instruction, Location
from dockyard.build.stages import Stage, split_stages

BOM = "\ufeff"


@dataclass(frozen=True)
class ParseWarning:
    message: str
    location: Location
    rule: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass
class Dockerfile:
    path: str
    directives: Directives
    instructions: tuple[Instruction, ...]
    meta_args: tuple[Arg, ...]  # ARGs before the first FROM
    stages: tuple[Stage, ...]
    warnings: list[ParseWarning] = field(default_factory=list)

    @property
    def escape(self) -> str:
        return self.directives.escape


def parse_dockerfile(source: str | bytes, path: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile. Bytes are read as UTF-8 (a leading BOM is ignored)."""
    text = source.decode("utf-8", errors="surrogateescape") if isinstance(source, bytes) else source
    lines = _Lines(text)
    scanner = DirectiveScanner()
    warnings: list[ParseWarning] = []
    try:
        instructions = list(_logical_lines(lines, scanner, path, warnings))
    except DockerfileError as e:
        raise e.located(path, lines.number) from None
    if not instructions:
        raise DockerfileError("file with no instructions", path, lines.number)
    meta_args, stages = split_stages(instructions)
    _warn_stage_names(stages, warnings)
    return Dockerfile(path, scanner.directives, tuple(instructions), meta_args, stages, warnings)


def parse_instruction(line: str, *, path: str = "Dockerfile", line_number: int = 1,
                      escape: str = "\\") -> Instruction:
    """One instruction from a single line, e.g. an ONBUILD trigger read from a base image's config.

    Heredoc bodies, when the trigger has them, follow on the next lines of `line`.
    """
    lines = _Lines(line)
    scanner = DirectiveScanner()
    scanner.done = True
    scanner.directives.escape = escape
    lines.number = line_number - 1
    try:
        found = list(_logical_lines(lines, scanner, path, []))
    except DockerfileError as e:
        raise e.located(path, line_number) from None
    if len(found) != 1:
        raise DockerfileError("onbuild trigger should be a single expression", path, line_number)
    return found[0]


class _Lines:
    """Physical lines with their line endings, and the number of the last one handed out."""

    def __init__(self, text: str) -> None:
        if text.startswith(BOM):
            text = text[1:]
        # Not str.splitlines: that also breaks on \r, \v, \x1c...; Docker only on \n.
        self._lines = _split_on_newline(text)
        self._next = 0
        self.number = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self._next >= len(self._lines):
            raise StopIteration
        line = self._lines[self._next]
        self._next += 1
        self.number += 1
        return line


def _split_on_newline(text: str) -> list[str]:
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _is_comment(line: str) -> bool:
    return trim_left_space(line).startswith("#")


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """(line without its continuation mark, True when the instruction ends on this line)."""
    body = line.rstrip(" \t")
    if body.endswith(escape) and (len(body) == 1 or body[-2] != escape):
        return body[:-1], False
    return line, True


def _logical_lines(lines: _Lines, scanner: DirectiveScanner, path: str,
                   warnings: list[ParseWarning]) -> Iterator[Instruction]:
    comments: list[str] = []
    for raw in lines:
        if _is_comment(raw):
            comment = trim_space(trim_left_space(raw)[1:])
            comments = comments + [comment] if comment else []
        first = trim_left_space(_trim_newline(raw))
        if scanner.feed(first):
            comments = comments[:-1]
        text = "" if _is_comment(first) else first
        start = lines.number
        text, ended = _trim_continuation(text, scanner.directives.escape)
        if ended and text == "":
            continue
        parts = [text]
        empty_continuation = False
        while not ended:
            try:
                raw = next(lines)
            except StopIteration:
                break
            if _is_comment(raw):
                continue
            piece = _trim_newline(raw)
            if trim_left_space(piece) == "":
                empty_continuation = True
                continue
            piece, ended = _trim_continuation(piece, scanner.directives.escape)
            parts.append(piece)
        line = "".join(parts)
        if empty_continuation:
            warnings.append(ParseWarning(f"Empty continuation line found in: {line}",
                                         Location(path, lines.number, lines.number), "NoEmptyContinuation"))
        try:
            node = node_from_line(line, scanner.directives.escape)
            heredocs = _read_heredocs(lines, line) if can_contain_heredoc(node) and "<<" in line else []
            location = Location(path, start, lines.number)
            yield build(node, heredocs=heredocs, location=location, comments=tuple(comments))
        except DockerfileError as e:
            raise e.located(path, start, lines.number) from None
        comments = []


def _read_heredocs(lines: _Lines, line: str) -> list[Heredoc]:
    bodies = []
    for marker in markers_in_line(line):
        content: list[str] = []
        for raw in lines:
            candidate = _trim_newline(raw)
            if marker.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == marker.name:
                break
            content.append(raw)
        else:
            raise DockerfileError("unterminated heredoc")
        bodies.append(Heredoc(marker.name, "".join(content), marker.expand, marker.chomp, marker.fd))
    return bodies


RESERVED_STAGE_NAMES = ("context", "scratch")


def _warn_stage_names(stages: tuple[Stage, ...], warnings: list[ParseWarning]) -> None:
    for stage in stages:
        if stage.name in RESERVED_STAGE_NAMES:
            warnings.append(ParseWarning(f"'{stage.name}' is reserved and should not be used as a stage name",
                                         stage.from_.location, "ReservedStageName"))


__all__ = ["Dockerfile", "ParseWarning", "parse_dockerfile", "parse_instruction"]
