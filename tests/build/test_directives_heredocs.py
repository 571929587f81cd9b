"""Parser directives at the top of a Dockerfile, and here-documents."""

from __future__ import annotations

import pytest

from dockyard.build.directives import CheckConfig, parse_check
from dockyard.build.errors import DockerfileError
from dockyard.build.heredoc import Heredoc, markers_in_line, parse_marker
from dockyard.build.instructions import Add, Copy, InlineSource, Onbuild, Run
from dockyard.build.parser import parse_dockerfile

# -- directives --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [
    "#escape=`", "# escape =`", "#\tescape= `", "# escape = `", "#\t  eScApE=`", "# ESCAPE=`  ",
    "  # escape=`",
])
def test_directive_spellings(header: str) -> None:
    df = parse_dockerfile(header + "\nFROM a\nRUN x `\n y\n")
    assert df.escape == "`"
    assert df.stages[0].instructions[0].command == ("x  y",)


def test_all_three_directives() -> None:
    df = parse_dockerfile("# syntax=docker/dockerfile:1.7 extra\n"
                          "# check=skip=JSONArgsRecommended,StageNameCasing;error=true\n"
                          "# escape=\\\n\nFROM a\n")
    d = df.directives
    assert d.syntax == "docker/dockerfile:1.7 extra" and d.syntax_image == "docker/dockerfile:1.7"
    assert d.check == CheckConfig(skip=("JSONArgsRecommended", "StageNameCasing"), error=True)
    assert d.escape == "\\" and d.lines == {"syntax": 1, "check": 2, "escape": 3}


@pytest.mark.parametrize("text", [
    "FROM a\n# escape=`\nRUN x `\n",  # after an instruction: a comment
    "# About my dockerfile\n# escape=`\nFROM a\nRUN x `\n",  # after an ordinary comment
    "\n# escape=`\nFROM a\nRUN x `\n",  # after a blank line
    "# unknowndirective=value\n# escape=`\nFROM a\nRUN x `\n",  # after an unknown directive
    "# direc \\\n# escape=`\nFROM a\nRUN x `\n",  # continuation is not supported in directives
])
def test_directives_only_at_the_top(text: str) -> None:
    df = parse_dockerfile(text)
    assert df.escape == "\\"
    assert df.stages[0].instructions[0].command == ("x `",)


def test_escape_after_comment_is_ignored_continuation_default() -> None:
    df = parse_dockerfile("# Comment here.\n# escape = `\n\nFROM image\nENV GOPATH \\\n\\go\n")
    (env,) = df.stages[0].instructions
    assert env.pairs[0].value == "\\go"


def test_escape_without_blank_line_after() -> None:
    df = parse_dockerfile("# escape = `\n# There is no blank line after the directives\nFROM image\n"
                          "ENV GOPATH `\n\\go\n")
    assert df.stages[0].instructions[0].pairs[0].value == "\\go"


@pytest.mark.parametrize("text, message, line", [
    ("# escape=`\n# escape=\\\nFROM a\n", "only one escape parser directive", 2),
    ("# syntax=a\n# SYNTAX=b\nFROM a\n", "only one syntax parser directive", 2),
    ("# escape=x\nFROM a\n", "invalid escape token 'x'", 1),
    ("# check=skip\nFROM a\n", "invalid check option", 1),
    ("# check=error=maybe\nFROM a\n", "failed to parse check option", 1),
])
def test_directive_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(DockerfileError, match=message) as e:
        parse_dockerfile(text, "Dockerfile")
    assert e.value.line == line and e.value.path == "Dockerfile"


def test_check_values() -> None:
    assert parse_check("skip=all") == CheckConfig(skip_all=True)
    assert parse_check(" error = TRUE ; skip = A , B ") == CheckConfig(skip=("A", "B"), error=True)
    assert parse_check("") == CheckConfig()


# -- heredoc markers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("word, expected", [
    ("<<EOF", Heredoc("EOF")),
    ("<<-EOF", Heredoc("EOF", chomp=True)),
    ("<<'EOF'", Heredoc("EOF", expand=False)),
    ('<<"EOF"', Heredoc("EOF", expand=False)),
    ('<<E"O"F', Heredoc("EOF", expand=False)),
    ('<<-"EOT"', Heredoc("EOT", expand=False, chomp=True)),
    ("3<<EOF", Heredoc("EOF", fd=3)),
    ("<< EOF", Heredoc("EOF")),
    ("<<", None),
    ("<<EOF bash", None),  # two words: not a plain marker
    ("a<<EOF", None),
    ("<<<EOF", None),
    ("EOF", None),
])
def test_markers(word: str, expected: Heredoc | None) -> None:
    assert parse_marker(word) == expected


def test_markers_in_line() -> None:
    line = "RUN <<FILE1 cat > file1 && <<FILE2 cat > file2"
    assert [m.name for m in markers_in_line(line)] == ["FILE1", "FILE2"]
    assert [m.name for m in markers_in_line("RUN cat << EOF")] == ["EOF"]
    assert markers_in_line("RUN echo '<<EOF'") == []  # quoted: not a marker
    assert markers_in_line("RUN echo 'unterminated <<EOF") == []  # a line that cannot be lexed has none


# -- here-documents in Dockerfiles ---------------------------------------------------------------------------

def body(text: str) -> list:
    return list(parse_dockerfile("FROM scratch\n" + text).stages[0].instructions)


def test_run_heredoc_alone() -> None:
    (run,) = body("RUN <<EOF\n  mkdir -p foo/bar\nEOF\n")
    assert isinstance(run, Run) and run.command == ("<<EOF",) and run.shell_form
    assert run.heredocs == (Heredoc("EOF", "  mkdir -p foo/bar\n"),)


def test_run_heredoc_with_a_command() -> None:
    (run,) = body("RUN <<EOT bash\n  set -ex\n  apt-get update\nEOT\n")
    assert run.command == ("<<EOT bash",)
    assert run.heredocs[0].content == "  set -ex\n  apt-get update\n"


def test_several_heredocs_in_one_line() -> None:
    run, after = body("RUN <<FILE1 cat > file1 && <<FILE2 cat > file2\n"
                      "I am\nfirst\nFILE1\nI am\nsecond\nFILE2\nUSER x\n")
    assert [(h.name, h.content) for h in run.heredocs] == [("FILE1", "I am\nfirst\n"),
                                                           ("FILE2", "I am\nsecond\n")]
    assert after.user == "x" and after.line == 9


def test_dash_strips_tabs_from_body_and_terminator() -> None:
    (run,) = body("RUN <<-EOF\n\techo a\n\t\techo b\n  echo c\n\tEOF\n")
    assert run.heredocs[0].content == "\techo a\n\t\techo b\n  echo c\n"
    assert run.heredocs[0].text == "echo a\necho b\n  echo c\n"


def test_terminator_must_be_the_whole_line() -> None:
    (run,) = body("RUN <<EOF\nEOF not yet\n EOF\nEOF\n")
    assert run.heredocs[0].content == "EOF not yet\n EOF\n"


def test_heredoc_body_is_verbatim() -> None:
    (run,) = body("RUN <<EOF\n# not a comment \\\n\n$HOME \\\nEOF\n")
    assert run.heredocs[0].content == "# not a comment \\\n\n$HOME \\\n"


def test_copy_heredoc_becomes_an_inline_file() -> None:
    copy, add = body("COPY <<EOF greeting.txt\nhello world\nEOF\nADD <<-\"EOT\" /script.sh\n"
                     "\techo \"hello ${FOO}\"\nEOT\n")
    assert isinstance(copy, Copy) and copy.inline == (InlineSource("EOF", "hello world\n", True),)
    assert copy.dest == "greeting.txt" and copy.sources == ()
    assert isinstance(add, Add) and add.inline == (InlineSource("EOT", 'echo "hello ${FOO}"\n', False),)


def test_copy_heredocs_mixed_with_paths() -> None:
    (copy,) = body("COPY a.txt <<one <<two /dst/\n1\none\n2\ntwo\n")
    assert copy.sources == ("a.txt",) and [s.name for s in copy.inline] == ["one", "two"]


def test_exec_form_has_no_heredocs() -> None:
    run, user = body('RUN ["cat", "<<EOF"]\nUSER me\n')
    assert run.heredocs == () and user.user == "me"


def test_heredocs_only_for_run_copy_add() -> None:
    env, user = body("ENV A=<<EOF\nUSER me\n")
    assert env.pairs[0].value == "<<EOF" and user.user == "me"


def test_onbuild_heredoc() -> None:
    (ob,) = body("ONBUILD RUN <<EOF\necho hi\nEOF\n")
    assert isinstance(ob, Onbuild)
    assert ob.expression == "RUN <<EOF\necho hi\nEOF"
    assert ob.trigger.heredocs == (Heredoc("EOF", "echo hi\n"),)


def test_heredoc_after_continuation() -> None:
    (run,) = body("RUN --network=none \\\n  <<EOF sh\necho hi\nEOF\n")
    assert run.network == "none" and run.heredocs[0].content == "echo hi\n"
    assert (run.location.line, run.location.end_line) == (2, 5)


def test_unterminated_heredoc() -> None:
    with pytest.raises(DockerfileError, match="unterminated heredoc") as e:
        parse_dockerfile("FROM a\nRUN <<EOF\nx\n")
    assert e.value.line == 2
