"""Property tests: parser and evaluator fail only with DockerfileError; plain text expands to itself."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.build.dockerignore import PatternMatcher
from dockyard.build.errors import DockerfileError
from dockyard.build.evaluate import evaluate
from dockyard.build.gomatch import match
from dockyard.build.gotext import is_space
from dockyard.build.parser import parse_dockerfile
from dockyard.build.plan import plan_build
from dockyard.build.shell_lex import Lexer
from dockyard.build.variables import Platform
from dockyard.errors import InvalidArgument

FRAGMENTS = [
    "FROM ", "from ", "RUN ", "CMD ", "ENTRYPOINT ", "SHELL ", "COPY ", "ADD ", "ENV ", "ARG ", "LABEL ",
    "EXPOSE ", "VOLUME ", "USER ", "WORKDIR ", "ONBUILD ", "STOPSIGNAL ", "HEALTHCHECK ", "MAINTAINER ",
    "AS ", "alpine", "scratch", "build", "0", "1", "x", "a=b", "k v", "\n", "\r\n", " ", "\t", "\\", "\\\n",
    "`", "`\n", "#", "# escape=`\n", "# syntax=x\n", "# check=skip=all\n", "\"", "'", "[", "]",
    "[\"a\", \"b\"]", "$", "${",
    "}", "${X:-y}", "${X#*}", "${X/a/b}", "$X", ":", "-", "=", "<<", "<<EOF", "<<-EOF", "EOF", "\tEOF", "--",
    "--from=", "--mount=", "type=cache,target=/c", "--chown=1:1", "--platform=", "--link", "--parents",
    "--exclude=*.md", "--interval=5s", "NONE", "/", "./", "../", "*", "?", "é", "\u3000", "\x85", "\x00",
]

dockerfile_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=40).map("".join),
)

AMD64 = Platform("linux", "amd64")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dockerfile_text)
def test_parser_fails_only_with_dockerfile_errors(text: str) -> None:
    try:
        parse_dockerfile(text)
    except DockerfileError as e:
        assert e.path == "Dockerfile"


BUILD_ARGS = st.dictionaries(st.sampled_from(["X", "A", "HTTP_PROXY"]), st.text(max_size=5), max_size=2)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dockerfile_text, BUILD_ARGS)
def test_evaluation_fails_only_with_invalid_argument(text: str, build_args: dict) -> None:
    try:
        df = parse_dockerfile(text)
        plan = plan_build(df, build_args=build_args, platform=AMD64, build_platform=AMD64)
        finals = {}
        for index in plan.order:
            sp = plan.stages[index]
            if sp.base.kind == "stage":
                variables = plan.stage_variables(index, parent=finals[sp.base.stage])
            else:
                variables = plan.stage_variables(index, base_env=["PATH=/bin"])
            for ins in sp.stage.instructions:
                evaluate(ins, variables, escape=df.escape)
            finals[index] = variables
    except InvalidArgument:
        pass


plain_text = st.text(alphabet=st.characters(blacklist_characters="$'\"\\`", blacklist_categories=("Cs",)),
                     max_size=60)


@given(plain_text, st.sampled_from(["\\", "`"]))
def test_plain_text_expands_to_itself(text: str, escape: str) -> None:
    assert Lexer(escape).expand_word(text, {"X": "1", "HOME": "/root"}) == text


@given(plain_text)
def test_plain_text_words_are_a_whitespace_split(text: str) -> None:
    spaces = "".join(c for c in map(chr, range(0x3001)) if is_space(c))
    expected = [w for w in re.split(f"[{spaces}]+", text) if w]
    assert Lexer().expand_words(text, {}) == expected


@given(st.text(alphabet=st.characters(blacklist_characters="*?[\\", blacklist_categories=("Cs",)),
               max_size=30))
def test_literal_glob_matches_only_itself(name: str) -> None:
    assert match(name, name)
    assert not match(name, name + "x")


path_segment = st.sampled_from(["a", "b", "build", "keep", "x.md", "y.log", "README.md"])
paths = st.lists(st.lists(path_segment, min_size=1, max_size=4).map("/".join), min_size=1, max_size=12)
patterns = st.lists(st.sampled_from(["a", "b", "build", "!build/keep", "*.md", "!README.md", "**/*.log",
                                     "a/**", "!a/b", "*/x.md", "**", "!**/keep", "build/*"]), max_size=5)


@settings(max_examples=300, deadline=None)
@given(patterns, paths)
def test_walk_matching_equals_full_matching(pats: list[str], all_paths: list[str]) -> None:
    matcher = PatternMatcher(pats)
    for path in all_paths:
        parts = path.split("/")
        info = None
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            result, info = matcher.matches_in_walk(prefix, info)
            assert result == matcher.matches(prefix), (pats, prefix)


@given(st.lists(st.sampled_from(["RUN echo", "COPY a b", "ENV A=1", "USER u", "ARG X", "LABEL a=b"]),
                max_size=8))
def test_line_numbers_count_physical_lines(lines: list[str]) -> None:
    text = "FROM a\n" + "".join(line + "\n\n" for line in lines)
    df = parse_dockerfile(text)
    assert [i.line for i in df.stages[0].instructions] == [2 + 2 * i for i in range(len(lines))]
