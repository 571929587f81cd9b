"""Parser directives: `# syntax=`, `# escape=`, `# check=` at the very top of a Dockerfile.

Docker's rule: directives are read only while every line so far has been a directive. The first line that is
anything else (an instruction, a blank line, an ordinary comment, an unknown `# key=value`) ends the search,
and later directive-looking lines are plain comments. Keys are case-insensitive, each may appear once, blanks
around `=` are allowed and a directive cannot be continued onto the next line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dockyard.build.errors import DockerfileError
from dockyard.build.gotext import trim_left_space, trim_space

KNOWN = ("syntax", "escape", "check")
ESCAPE_TOKENS = ("\\", "`")
# Go's RE2 \s is [\t\n\f\r ] (no \v, ASCII only); spelled out so Python's wider \s does not leak in.
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)[\t\n\f\r ]*=[\t\n\f\r ]*(.+?)[\t\n\f\r ]*")


@dataclass(frozen=True)
class CheckConfig:
    """The `# check=` directive: which build checks to skip and whether warnings fail the build."""

    skip: tuple[str, ...] = ()
    skip_all: bool = False
    error: bool = False
    experimental: tuple[str, ...] = ()
    experimental_all: bool = False


@dataclass
class Directives:
    escape: str = "\\"
    syntax: str | None = None  # the value as written, e.g. "docker/dockerfile:1"
    check: CheckConfig = field(default_factory=CheckConfig)
    lines: dict[str, int] = field(default_factory=dict)  # directive name -> line number

    @property
    def syntax_image(self) -> str | None:
        """The frontend image of `# syntax=`, without trailing options."""
        return self.syntax.split(" ", 1)[0] if self.syntax else None


def parse_check(value: str) -> CheckConfig:
    """`skip=A,B;error=true;experimental=all`, as Docker's lint options."""
    text = trim_space(value)
    if not text:
        return CheckConfig()
    skip: tuple[str, ...] = ()
    experimental: tuple[str, ...] = ()
    skip_all = experimental_all = error = False
    for part in text.split(";", 2):
        key, eq, val = part.partition("=")
        if not eq:
            raise DockerfileError(f"invalid check option {part!r}")
        key, val = trim_space(key), trim_space(val)
        if key == "skip" or key == "experimental":
            names = tuple(trim_space(v) for v in val.split(","))
            if key == "skip":
                skip_all, skip = (True, ()) if val == "all" else (False, names)
            else:
                experimental_all, experimental = (True, ()) if val == "all" else (False, names)
        elif key == "error":
            error = _go_bool(val, part)
        else:
            raise DockerfileError(f"invalid check option {key!r}")
    return CheckConfig(skip, skip_all, error, experimental, experimental_all)


def _go_bool(text: str, part: str) -> bool:
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise DockerfileError(f"failed to parse check option {part!r}: invalid syntax")


class DirectiveScanner:
    """Feed it every physical line in order; it recognises directives until the first non-directive."""

    def __init__(self) -> None:
        self.directives = Directives()
        self.done = False
        self._line = 0

    def feed(self, line: str) -> bool:
        """True when `line` is a directive (and has been applied)."""
        self._line += 1
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        m = _DIRECTIVE.fullmatch(trim_left_space(line[1:]))
        key = m.group(1).lower() if m else None
        if m is None or key not in KNOWN:
            self.done = True
            return False
        assert key is not None
        if key in self.directives.lines:
            raise DockerfileError(f"only one {key} parser directive can be used", line=self._line)
        self.directives.lines[key] = self._line
        self._apply(key, m.group(2))
        return True

    def _apply(self, key: str, value: str) -> None:
        if key == "escape":
            if value not in ESCAPE_TOKENS:
                raise DockerfileError(f"invalid escape token '{value}' does not match ` or \\",
                                      line=self._line)
            self.directives.escape = value
        elif key == "syntax":
            self.directives.syntax = value
        else:
            try:
                self.directives.check = parse_check(value)
            except DockerfileError as e:
                raise DockerfileError(f"failed to parse check options: {e.reason}", line=self._line) from None
