"""Word expansion, with expected values taken from the Dockerfile reference's "Environment replacement"."""

from __future__ import annotations

import pytest

from dockyard.build.errors import DockerfileError
from dockyard.build.shell_lex import Lexer, LexError

ENV = {"PWD": "/home", "SHELL": "bash", "NULL": "", "foo": "FOO", "str": "foobarbaz", "KOREAN": "한국어"}


def word(text: str, env: dict | None = None, escape: str = "\\") -> str:
    return Lexer(escape).expand_word(text, ENV if env is None else env)


@pytest.mark.parametrize("text, expected", [
    # $name and ${name}
    ("$foo", "FOO"), ("${foo}", "FOO"), ("${foo}_bar", "FOO_bar"), ("$foo_bar", ""), ("a$PWD/b", "a/home/b"),
    ("$unset", ""), ("he${hi}xx", "hexx"), ("$.", "$."), ("he$.x", "he$.x"), ("$", "$"),
    # ${variable:-word}: the value if set and non-empty, else word
    ("${foo:-bar}", "FOO"), ("${unset:-bar}", "bar"), ("${NULL:-bar}", "bar"),
    # ${variable-word}: the value if set (even empty), else word
    ("${foo-bar}", "FOO"), ("${unset-bar}", "bar"), ("${NULL-bar}", ""),
    # ${variable:+word}: word if set and non-empty, else empty
    ("${foo:+bar}", "bar"), ("${unset:+bar}", ""), ("${NULL:+bar}", ""),
    # ${variable+word}: word if set (even empty), else empty
    ("${foo+bar}", "bar"), ("${unset+bar}", ""), ("${NULL+bar}", "bar"),
    # word can be any string, including other variables
    ("${unset:-$PWD}", "/home"), ("${X:-${Y:-yyy}}", "yyy"), ("${PWD:+${SHELL}}", "bash"),
    ("${aaa:-bbb}}", "bbb}"), ("${aaa:-bbb {foo}", "bbb {foo"), ("${unset:-a b  c}", "a b  c"),
    # ${name?msg} / ${name:?msg} pass values through
    ("he${PWD?}", "he/home"), ("he${PWD:?}", "he/home"), ("he${NULL?}", "he"),
    # the pattern forms (examples of the reference)
    ("${str#f*b}", "arbaz"), ("${str##f*b}", "az"), ("${str%b*}", "foobar"), ("${str%%b*}", "foo"),
    ("${str/ba/fo}", "fooforbaz"), ("${str//ba/fo}", "fooforfoz"),
    ("${str#nomatch}", "foobarbaz"), ("${str#}", "foobarbaz"), ("${str/?/X}", "Xoobarbaz"),
    ("${str#\\*}", "foobarbaz"), ("${unset#x}", ""),
    # positional and special parameters are never set
    ("$1", ""), ("${1:-one}", "one"), ("$999aaa", "aaa"), ("$@", ""), ("$@@@", "@@"), ("${#:-x}", "x"),
    ("$$", ""), ("$0", ""),
    # escapes: \$foo and \${foo} are literal
    ("\\$foo", "$foo"), ("\\${foo}", "${foo}"), ("he\\$PWD", "he$PWD"), ("he\\\\$PWD", "he\\/home"),
    ("\\${}", "${}"), ("abc\\tdef", "abctdef"), ("hello\\", "hello"), ("hello\\\\", "hello\\"),
    ("he\\'llo", "he'llo"), ("a\\ b", "a b"),
    # single quotes: everything literal
    ("'$foo'", "$foo"), ("'he${XX}'", "he${XX}"), ("'\\$PWD'", "\\$PWD"), ("'abc\\tdef'", "abc\\tdef"),
    ("'hello\\'", "hello\\"), ("he'll'o", "hello"), ("'\"hello\"'", '"hello"'),
    # double quotes: $ expands; the escape only escapes ", $ and itself
    ('"$foo"', "FOO"), ('"he\'$PWD\'"', "he'/home'"), ('"he\\$PWD"', "he$PWD"), ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"), ('"a\\"b"', 'a"b'), ('"hel\'lo"', "hel'lo"), ('"\'\'"', "''"),
    # no expansion happens without $, quotes or escapes
    ("plain text  with   spaces", "plain text  with   spaces"), ("<<EOF", "<<EOF"),
    ("안녕$KOREAN", "안녕한국어"),
])
def test_expand_word(text: str, expected: str) -> None:
    assert word(text) == expected


@pytest.mark.parametrize("text", [
    "he'llo", "'hello", '"hello', '"hello\\"', "${}", "he${}xx", "${{aaa}", "${aaa", "${aaa:-bbb", "he${.}",
    "${:}", "${:-bbb}", "${X:YYY}", "${X:=000}", "${FOO=aaa}", "${unset?}", "${unset:?}", "${NULL:?}",
    "${foo:#x}", "${foo:%%x}", "${foo//ww}", "${foo#\\x}", "${aaa:-bbb ${foo}",
])
def test_expand_errors(text: str) -> None:
    with pytest.raises(LexError):
        word(text)


def test_required_messages() -> None:
    with pytest.raises(DockerfileError, match="VAR: message here x"):
        word("${VAR:?message here $ARG}", {"VAR": "", "ARG": "x"})
    with pytest.raises(DockerfileError, match="VAR: is not allowed to be unset"):
        word("${VAR?}", {})
    with pytest.raises(DockerfileError, match="VAR: is not allowed to be empty"):
        word("${VAR:?}", {"VAR": ""})


def test_same_value_for_the_whole_word() -> None:
    assert word("$abc-${abc}", {"abc": "hello"}) == "hello-hello"


def test_backtick_escape() -> None:
    assert word("`$foo", escape="`") == "$foo"
    assert word("c:\\$foo", escape="`") == "c:\\FOO"
    assert word('"a`"b"', escape="`") == 'a"b'


def test_pattern_escapes_and_specials() -> None:
    env = {"FOO": "()[]{}^$.*?|\\x"}
    assert word("${FOO#()[]{\\}^$.\\*\\?|\\\\}", env) == "x"
    assert word("${FOO%%\\**}", {"FOO": "xx**"}) == "xx"
    assert word("${FOO#*x*y}", {"FOO": "xxyy"}) == "y"
    assert word("${FOO#*}", {"FOO": "xxyy"}) == "xxyy"
    assert word("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}) == "xyy"
    assert word("${FOO%%\\**\\*}", {"FOO": "a***yy*"}) == "a"
    env = {"FOO": "/foo*/*/*.txt", "N": "\\*/"}
    assert word("${FOO/$N/.} - ${FOO//$N/.}", env) == "/foo.*/*.txt - /foo..*.txt"
    assert word("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}) == "\\/tmp\\/foo.txt"
    assert word("${FOO/$B/ww}", {"FOO": "xxyy", "B": ""}) == "wwxxyy"
    assert word("${FOO///}", {"FOO": "xxyy"}) == "xxyy"


def test_platform_style_names() -> None:
    release = "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz"
    env = {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"}
    assert word(release, env) == "something-v1.2.3.linux-arm-v7.tar.gz"
    env["TARGETVARIANT"] = ""
    assert word(release, {**env, "TARGETARCH": "arm64"}) == "something-v1.2.3.linux-arm64.tar.gz"


def test_matched_and_unmatched() -> None:
    e = Lexer().expand("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc} $FOO", {"FOO": "xxx", "BAR": ""})
    assert e.result == "xxx bbb ccc xxx"
    assert e.matched == {"FOO", "BAR"} and e.unmatched == {"BAZ"}


# -- word lists ---------------------------------------------------------------------------------------------

WORDS_ENV = {"space": "abc  def", "leading": "  ab c", "trailing": "ab c   "}


@pytest.mark.parametrize("text, expected", [
    ("hello", ["hello"]),
    ("hello${hi}bye", ["hellobye"]),
    ("hello${space}bye", ["helloabc", "defbye"]),  # a value's blanks split ...
    ('hello"${space}"bye', ["helloabc  defbye"]),  # ... unless quoted
    ('hello "${space}"bye', ["hello", "abc  defbye"]),
    ("hello${leading}def", ["hello", "ab", "cdef"]),
    ('hello"${leading}" def', ["hello  ab c", "def"]),
    ("hello${trailing}d", ["helloab", "c", "d"]),
    ('hel"lo${trailing}"', ["helloab c   "]),
    ('hello" there  "', ["hello there  "]),
    ("hello there     ", ["hello", "there"]),
    ("hello\\ there", ["hello there"]),
    ('hello\\" there', ['hello"', "there"]),
    ('hello"\\\\there"', ["hello\\there"]),
    ("hello'\\\\there'", ["hello\\\\there"]),
    ("hello'$there'", ["hello$there"]),
    ("   ", []),
    ('"" a', ["a"]),  # an empty quoted word adds nothing (Docker's behaviour)
    ("80 443/tcp", ["80", "443/tcp"]),
])
def test_expand_words(text: str, expected: list[str]) -> None:
    assert Lexer().expand_words(text, WORDS_ENV) == expected


def test_words_error() -> None:
    with pytest.raises(LexError):
        Lexer().expand_words('hello" there', {})


# -- lexer modes used internally ----------------------------------------------------------------------------

def test_raw_modes_keep_quotes_escapes_and_unset_names() -> None:
    lex = Lexer(raw_quotes=True, raw_escapes=True, skip_unset=True)
    text = "a '$x' \"$y\" \\$z ${w:-d} ${v/a/b}"
    assert lex.expand_word(text, {"y": "Y"}) == "a '$x' \"Y\" \\$z ${w:-d} ${v/a/b}"


def test_skip_quotes_for_heredoc_bodies() -> None:
    lex = Lexer(skip_quotes=True)
    assert lex.expand_word("echo \"hello ${FOO}\" '$FOO' \\$FOO\n", {"FOO": "bar"}) == (
        "echo \"hello bar\" 'bar' $FOO\n")
