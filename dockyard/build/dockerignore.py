""".dockerignore files and the pattern matcher Docker uses for them (also for COPY --exclude and --parents).

File rules: one pattern per line; a line starting with `#` (in column 1) is a comment; blanks around a pattern
are trimmed; `!` in front makes an exception; each pattern is path-cleaned (`./a//b/` is `a/b`) and a leading
`/` is dropped, the context root being the root.

Matching rules: Go's filepath.Match per path (`*` and `?` stop at `/`, `[...]` classes, `\\` escapes) plus
`**`, which spans any number of directories (`**/*.go`, `a/**/b`, `logs/**`). A pattern matching a
directory matches everything below it. Patterns apply in order and the last one that matches a path
decides, so `!` lines re-include what earlier lines excluded, including files inside an excluded directory
(`build` then `!build/keep.txt` keeps build/keep.txt), while a later exclusion overrides an earlier `!`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from dockyard.build.config_values import clean_path
from dockyard.build.errors import BuildContextError
from dockyard.build.gomatch import check_pattern
from dockyard.build.gotext import trim_space

# Characters escaped for the regex that are not glob syntax (as Docker does); `[`, `]`, `^` and `-` pass
# through so bracket classes keep working.
_REGEX_SPECIAL = set(".+()|{}$")
_PATTERN_CHARS = set("*[]?^\\")


def read_patterns(data: bytes | str) -> list[str]:
    """The patterns of a .dockerignore file, normalised (exceptions keep their `!`)."""
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    text = text.removeprefix("\ufeff")
    patterns = []
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        if line.startswith("#"):
            continue
        pattern = trim_space(line)
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = trim_space(pattern[1:])
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


@dataclass
class Pattern:
    text: str  # cleaned, without the `!`
    exclusion: bool  # a `!` exception
    _kind: str = ""
    _regex: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        self._compile()

    def matches(self, path: str) -> bool:
        if self._kind == "exact":
            return path == self.text
        if self._kind == "prefix":
            return path.startswith(self.text[:-2])
        if self._kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self._regex is not None
        return self._regex.match(path) is not None

    def prefix_only(self) -> bool:
        """No wildcard before a trailing `/**` or `/*`: only paths under a fixed prefix can match."""
        text = self.text
        for tail in ("/**", "/*"):
            if text.endswith(tail):
                text = text[: -len(tail)]
                break
        return not (set(text) & _PATTERN_CHARS)

    def fixed_prefix(self) -> str:
        text = self.text
        for tail in ("/**", "/*"):
            if text.endswith(tail):
                return text[: -len(tail)]
        return text

    def _compile(self) -> None:
        pattern = self.text
        out = ["^"]
        kind = "exact"
        i = 0
        n = len(pattern)
        first = True
        while i < n:
            ch = pattern[i]
            i += 1
            if ch == "*":
                if i < n and pattern[i] == "*":
                    i += 1
                    if i < n and pattern[i] == "/":
                        i += 1
                    if i >= n:
                        if kind == "exact":
                            kind = "prefix"
                        else:
                            out.append(".*")
                            kind = "regex"
                    else:
                        out.append("(.*/)?")
                        kind = "regex"
                    if first:
                        kind = "suffix"
                else:
                    out.append("[^/]*")
                    kind = "regex"
            elif ch == "?":
                out.append("[^/]")
                kind = "regex"
            elif ch in _REGEX_SPECIAL:
                out.append("\\" + ch)
            elif ch == "\\":
                if i < n:
                    out.append(re.escape(pattern[i]))
                    i += 1
                    kind = "regex"
                else:
                    out.append("\\\\")
            elif ch in "[]":
                out.append(ch)
                kind = "regex"
            elif ch.isalnum() or ch in "-^!":
                out.append(ch)
            else:
                out.append(re.escape(ch))
            first = False
        self._kind = kind
        if kind == "regex":
            try:
                self._regex = re.compile("".join(out) + "$", re.DOTALL)
            except re.error as e:
                raise BuildContextError(f"syntax error in pattern {self.text!r}: {e}") from None


class PatternMatcher:
    """An ordered list of patterns; the last matching one decides."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = trim_space(raw)
            if not text:
                continue
            text = clean_path(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise BuildContextError('illegal exclusion pattern: "!"')
                text = text[1:]
            check_pattern(text)
            self.patterns.append(Pattern(text, exclusion))

    def __bool__(self) -> bool:
        return bool(self.patterns)

    @property
    def has_exclusions(self) -> bool:
        return any(p.exclusion for p in self.patterns)

    def matches(self, path: str) -> bool:
        """Does `path` (slash-separated, relative) match? Decided the way a walk from the root decides it,
        directory by directory (BuildKit's rule for what the context holds), so that looking a path up and
        walking to it always agree."""
        info: list[bool] | None = None
        matched = False
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            matched, info = self.matches_in_walk("/".join(parts[:i]), info)
        return matched

    def matches_in_walk(self, path: str, parent: Sequence[bool] | None) -> tuple[bool, list[bool]]:
        """Match `path` reusing its parent directory's per-pattern results (a directory match covers its
        children); returns (matched, results to pass for this path's children)."""
        matched = False
        info = [False] * len(self.patterns)
        for i, pattern in enumerate(self.patterns):
            hit = bool(parent) and parent[i]  # type: ignore[index]
            if not hit:
                if pattern.exclusion != matched:
                    continue  # cannot change the outcome (and, as in Docker, is not recorded for children)
                hit = pattern.matches(path)
                if not hit and not parent:
                    hit = any(pattern.matches(p) for p in _parents(path))
            info[i] = hit
            if hit:
                matched = not pattern.exclusion
        return matched, info

    def may_reinclude_below(self, directory: str) -> bool:
        """Could an exception pattern keep something under an excluded `directory`? (Else skip walking it.)"""
        exceptions = [p for p in self.patterns if p.exclusion]
        if not exceptions:
            return False
        if not all(p.prefix_only() for p in exceptions):
            return True  # a wildcard exception could match anywhere
        prefix = directory + "/"
        return any((p.fixed_prefix() + "/").startswith(prefix) for p in exceptions)


def _parents(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]
