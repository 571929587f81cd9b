"""Wildcards (Go's filepath.Match) and .dockerignore patterns."""

from __future__ import annotations

import pytest

from dockyard.build.dockerignore import PatternMatcher, read_patterns
from dockyard.build.errors import BuildContextError
from dockyard.build.gomatch import BadPattern, has_wildcards, match


@pytest.mark.parametrize("pattern, name, expected", [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True), ("a*", "abc", True),
    ("a*", "ab/c", False), ("a*/b", "abc/b", True), ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True), ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False), ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False), ("ab[c]", "abc", True), ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False), ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True), ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False), ("[a-ζ]*", "α", True), ("*[a-ζ]", "A", False), ("a?b", "a/b", False),
    ("a*b", "a/b", False), ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("[\\-x]", "x", True), ("*x", "xxx", True),
    # the reference's example for a file named arr[0].txt
    ("arr[[]0].txt", "arr[0].txt", True), ("index.?s", "index.js", True), ("*.png", "a.png", True),
    ("[z-a]", "m", False),  # an inverted range is accepted and matches nothing
    ("a.b", "axb", False), ("(x)|y", "(x)|y", True),
])
def test_go_match(pattern: str, name: str, expected: bool) -> None:
    assert match(pattern, name) is expected


@pytest.mark.parametrize("pattern", ["[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[",
                                     "a/b[", "ab\\"])
def test_go_bad_patterns(pattern: str) -> None:
    with pytest.raises(BadPattern):
        match(pattern, "x")


@pytest.mark.parametrize("text, expected", [
    ("a*", True), ("a?", True), ("[ab]", True), ("plain/path.txt", False), ("a\\*b", False), ("a\\[", False),
    ("x\\\\*", True),
])
def test_has_wildcards(text: str, expected: bool) -> None:
    assert has_wildcards(text) is expected


# -- .dockerignore files -----------------------------------------------------------------------------------

def test_read_patterns() -> None:
    text = ("\ufeff# comment\n\n  *.md  \n!README.md\n/foo/bar\n./a//b/../c/\n"
            "  # not a comment: blanks first\n! spaced \n\r\n/\nsub/**\r\n")
    assert read_patterns(text.encode()) == ["*.md", "!README.md", "foo/bar", "a/c",
                                            "# not a comment: blanks first", "!spaced", "/", "sub/**"]


def ignored(patterns: list[str], path: str) -> bool:
    return PatternMatcher(read_patterns("\n".join(patterns))).matches(path)


# The reference's .dockerignore examples.
@pytest.mark.parametrize("path, expected", [
    ("somedir/temporary.txt", True), ("somedir/temp", True), ("somedir/temp/x", True),
    ("somedir/subdir/temporary.txt", True), ("tempa", True), ("tempb", True), ("temp", False),
    ("temporary.txt", False), ("a/b/c/temp.txt", False), ("tempab", False),
])
def test_reference_example(path: str, expected: bool) -> None:
    assert ignored(["# comment", "*/temp*", "*/*/temp*", "temp?"], path) is expected


@pytest.mark.parametrize("patterns, path, expected", [
    (["**/*.go"], "main.go", True), (["**/*.go"], "a/b/c.go", True), (["**/*.go"], "a/b/c.goo", False),
    (["*.md", "!README.md"], "README.md", False), (["*.md", "!README.md"], "CHANGES.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.md", "README-secret.md", "!README*.md"], "README-secret.md", False),  # the last match decides
    (["/foo/bar"], "foo/bar", True), (["foo/bar"], "foo/bar/baz", True), (["foo/bar"], "x/foo/bar", False),
    (["*", "!app"], "app/main.py", False), (["*", "!app"], "Dockerfile", True),
    (["*", "!*.py"], "main.py", False), (["*", "!*.py"], "pkg/mod.py", True),  # `*` stops at /
    (["**"], "anything/at/all", True), (["logs/**"], "logs/a/b.log", True), (["logs/**"], "logs", False),
    (["a/**/b"], "a/b", True), (["a/**/b"], "a/x/y/b", True), (["a/**/b"], "a/x/y/c", False),
    (["**/b"], "b", True), (["**/b"], "x/b", True), (["**/b"], "xb", False),
    (["build", "!build/keep.txt"], "build/keep.txt", False),  # `!` re-includes inside an excluded directory
    (["build", "!build/keep.txt"], "build/other.txt", True),
    (["!build/keep.txt", "build"], "build/keep.txt", True),  # ... but only when it comes after
    (["build/", "!build/sub/"], "build/sub/x", False),
    (["node_modules", "!node_modules/keep", "node_modules/keep/secret"], "node_modules/keep/secret", True),
    (["file[0-9].txt"], "file7.txt", True), (["a\\*b"], "a*b", True), (["a\\*b"], "axb", False),
    (["a.b"], "axb", False), (["x+y"], "x+y", True), (["(a)"], "(a)", True),
])
def test_ignore_rules(patterns: list[str], path: str, expected: bool) -> None:
    assert ignored(patterns, path) is expected


def test_walk_matching_agrees_with_full_matching() -> None:
    patterns = ["*.md", "!docs/**", "docs/private", "build", "!build/keep"]
    matcher = PatternMatcher(patterns)
    paths = ["a.md", "docs", "docs/a.md", "docs/private", "docs/private/x.md", "build", "build/keep",
             "build/keep/y", "build/z"]
    infos: dict[str, list[bool]] = {}
    for path in paths:
        parent = path.rpartition("/")[0]
        result, infos[path] = matcher.matches_in_walk(path, infos.get(parent))
        assert result == matcher.matches(path), path


def test_bad_ignore_patterns() -> None:
    with pytest.raises(BuildContextError, match="illegal exclusion pattern"):
        PatternMatcher(["!"])
    with pytest.raises(BuildContextError, match="syntax error in pattern"):
        PatternMatcher(["a["])


def test_may_reinclude_below() -> None:
    assert not PatternMatcher(["build"]).may_reinclude_below("build")
    assert PatternMatcher(["build", "!build/keep"]).may_reinclude_below("build")
    assert not PatternMatcher(["build", "other", "!build/keep"]).may_reinclude_below("other")
    assert PatternMatcher(["build", "!**/*.keep"]).may_reinclude_below("build")
