"""The Dockerfile parser: line rules, argument forms and every instruction's typed form."""

from __future__ import annotations

import pytest

from dockyard.build.errors import DockerfileError
from dockyard.build.instructions import (
    Add,
    Arg,
    ArgDecl,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    HealthConfig,
    InlineSource,
    KeyValue,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from dockyard.build.parser import parse_dockerfile, parse_instruction


def body(text: str) -> list:
    """The instructions after the first FROM."""
    return list(parse_dockerfile("FROM scratch\n" + text).stages[0].instructions)


def one(text: str):
    (ins,) = body(text)
    return ins


# -- line rules: continuations, comments, blank lines ----------------------------------------------------

@pytest.mark.parametrize("text, command", [
    ("RUN echo hello \\\n  world", "echo hello   world"),
    ("RUN echo hello\\\n  world\\\n  goodnight  \\\n  moon", "echo hello  world  goodnight    moon"),
    ("RUN echo hello  \\  \nworld", "echo hello  world"),  # blanks after the escape are fine
    ("RUN echo a \\\n# a comment inside\n  b", "echo a   b"),  # comment lines are dropped
    ("RUN echo a \\\n    # indented comment\nb", "echo a b"),
    ("RUN foo \\\n\nbar \\\n  \t\nbaz", "foo bar baz"),  # blank lines inside are dropped
    ("RUN echo hi \\\n \\\n world", "echo hi   world"),
    ("RUN good\\\nbye\\\nfrog", "goodbyefrog"),
    ("RUN echo \\\\", "echo \\\\"),  # an escaped escape character does not continue the line
    ("RUN echo '1234' && \\\n    echo \"456\"", "echo '1234' &&     echo \"456\""),
    ("RUN echo x \\", "echo x"),  # continuation at the end of the file
])
def test_continuations(text: str, command: str) -> None:
    assert one(text).command == (command,)


def test_backtick_escape_continues_lines() -> None:
    df = parse_dockerfile("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo done\nCOPY a c:\\\n")
    run, copy = df.stages[0].instructions
    assert run.command == ("dir c:\\   && echo done",)
    assert copy.sources == ("a",) and copy.dest == "c:\\"  # `\` is an ordinary character now


def test_backslash_is_plain_under_backtick_escape() -> None:
    df = parse_dockerfile("# escape=`\nFROM scratch\nRUN echo \\\nENV A=1\n")
    run, env = df.stages[0].instructions
    assert run.command == ("echo \\",)
    assert isinstance(env, Env)


def test_comments_and_blank_lines_between_instructions() -> None:
    df = parse_dockerfile("# comment\n\n  # indented comment\nFROM a\n\n\t\nRUN x # not a comment\n")
    assert [i.original for i in df.instructions] == ["FROM a", "RUN x # not a comment"]
    assert df.instructions[1].location.line == 7


def test_line_numbers_cover_continuations_and_heredocs() -> None:
    df = parse_dockerfile("FROM a\nRUN a \\\n  b \\\n  c\nCOPY <<EOF /x\nhello\nEOF\nUSER me\n",
                          "Dockerfile.dev")
    run, copy, user = df.stages[0].instructions
    assert (run.location.line, run.location.end_line) == (2, 4)
    assert (copy.location.line, copy.location.end_line) == (5, 7)
    assert user.location.line == 8 and str(user.location) == "Dockerfile.dev:8"


def test_crlf_and_bom() -> None:
    df = parse_dockerfile("\ufeffFROM a\r\nRUN echo a \\\r\n b\r\n".encode())
    assert df.stages[0].instructions[0].command == ("echo a  b",)


def test_empty_continuation_lines_warn() -> None:
    df = parse_dockerfile("FROM a\nRUN a \\\n\n b\n")
    assert [w.rule for w in df.warnings] == ["NoEmptyContinuation"]


def test_original_text_is_kept() -> None:
    ins = one("copy   --chown=1:1   a  b \\\n  /dst/   ")
    assert ins.original == "copy   --chown=1:1   a  b   /dst/"
    assert isinstance(ins, Copy) and ins.sources == ("a", "b")


def test_keywords_are_case_insensitive() -> None:
    df = parse_dockerfile("from alpine as Build\nrun echo\nCoPy a b\n")
    from_, run, copy = df.instructions
    assert from_.name == "build" and isinstance(run, Run) and isinstance(copy, Copy)


# -- exec and shell forms ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, command, shell_form", [
    ('RUN ["echo", "hi"]', ("echo", "hi"), False),
    ('RUN  [ "ls" , "-la" ]  ', ("ls", "-la"), False),
    ('RUN ["echo", "\'1234\'"]', ("echo", "'1234'"), False),
    ('CMD [ "\\/usr\\\\\\"/bin/znc", "-f", "-r" ]', ('/usr\\"/bin/znc', "-f", "-r"), False),
    ("RUN []", (), False),
    # Not valid JSON: the shell form, text kept as written.
    ("CMD ['echo','single quotes are invalid JSON']", ("['echo','single quotes are invalid JSON']",), True),
    ('CMD ["echo", "unterminated"', ('["echo", "unterminated"',), True),
    ("CMD '[\"echo\", \"JSON in a string\"]'", ("'[\"echo\", \"JSON in a string\"]'",), True),
    ('RUN ["a", "b"] && echo', ('["a", "b"] && echo',), True),
    ('RUN [NaN]', ("[NaN]",), True),
    ("RUN echo $HOME", ("echo $HOME",), True),
    ("RUN", (), True),
])
def test_exec_and_shell_forms(text: str, command: tuple, shell_form: bool) -> None:
    ins = one(text)
    assert ins.command == command and ins.shell_form is shell_form


def test_json_array_of_non_strings_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="arrays must be comprised of strings only") as e:
        parse_dockerfile('FROM a\nCMD ["echo", 1]\n')
    assert e.value.line == 2


def test_cmd_and_entrypoint() -> None:
    cmd, ep, ep2 = body('CMD ["a"]\nENTRYPOINT /bin/app --x\nENTRYPOINT []\n')
    assert isinstance(cmd, Cmd) and cmd.command == ("a",)
    assert isinstance(ep, Entrypoint) and ep.command == ("/bin/app --x",) and ep.shell_form
    assert ep2.command == () and not ep2.shell_form


def test_shell_needs_json() -> None:
    assert one('SHELL ["powershell", "-command"]') == Shell(
        shell=("powershell", "-command"), original='SHELL ["powershell", "-command"]',
        location=one('SHELL ["powershell", "-command"]').location)
    with pytest.raises(DockerfileError, match="SHELL requires the arguments to be in JSON form"):
        body("SHELL /bin/bash -c")
    with pytest.raises(DockerfileError, match="at least one argument"):
        body("SHELL []")


# -- instructions ----------------------------------------------------------------------------------------

def test_from() -> None:
    df = parse_dockerfile("FROM --platform=$BUILDPLATFORM golang:1.22 AS Builder\nFROM builder\n")
    a, b = df.instructions
    assert isinstance(a, From)
    assert (a.image, a.name, a.platform) == ("golang:1.22", "builder", "$BUILDPLATFORM")
    assert (b.image, b.name, b.platform) == ("builder", None, None)


@pytest.mark.parametrize("line, message", [
    ("FROM", "either one or three arguments"),
    ("FROM a b", "either one or three arguments"),
    ("FROM a AS", "either one or three arguments"),
    ("FROM a AS 1st", "invalid name for build stage"),
    ("FROM a AS bad$name", "invalid name for build stage"),
    ("FROM a IS b", "either one or three arguments"),
    ("FROM --foo=bar a", "unknown flag: --foo"),
])
def test_from_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        parse_dockerfile(line + "\n")


def test_run_flags() -> None:
    run = one("RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=tok "
              "--network=none --security=insecure make")
    assert isinstance(run, Run)
    assert run.command == ("make",) and run.network == "none" and run.security == "insecure"
    cache, secret = run.mounts
    assert (cache.type, cache.target, cache.sharing) == ("cache", "/root/.cache", "locked")
    assert cache.readonly is False
    assert (secret.type, secret.id, secret.readonly) == ("secret", "tok", True)
    assert run.mount_specs[0] == "type=cache,target=/root/.cache,sharing=locked"


@pytest.mark.parametrize("spec, fields", [
    ("target=/src", {"type": "bind", "target": "/src", "readonly": True}),
    ("type=bind,source=x,target=/x,rw", {"source": "x", "readonly": False}),
    ("type=bind,from=builder,src=/out,dst=/in", {"from_": "builder", "source": "/out", "target": "/in"}),
    ("type=tmpfs,target=/t,size=64m", {"type": "tmpfs", "size": 64 << 20, "readonly": False}),
    ("type=cache,target=/c,id=go,mode=0700,uid=1000,gid=1000", {"id": "go", "mode": 0o700, "uid": 1000}),
    ("type=secret,id=aws,target=/root/.aws/credentials,required", {"required": True}),
    ("type=secret,id=tok,env=TOKEN", {"env": "TOKEN"}),
    ("'type=bind,\"target=/a,b\"'", {"target": "/a,b"}),  # CSV quoting inside flag quoting
    ("type=ssh", {"type": "ssh", "readonly": True}),
])
def test_mount_specs(spec: str, fields: dict) -> None:
    (mount,) = one(f"RUN --mount={spec} true").mounts
    for key, value in fields.items():
        assert getattr(mount, key) == value


@pytest.mark.parametrize("line, message", [
    ("RUN --mount=type=nfs,target=/x true", "unsupported mount type"),
    ("RUN --mount=type=bind,target=/x,size=1g true", "unexpected key 'size'"),
    ("RUN --mount=type=secret,from=x,id=a true", "secret mount should not have a from"),
    ("RUN --mount=type=secret true", "one of source, target required"),
    ("RUN --mount=type=bind,target=/x,mode=0755 true", "mode not allowed"),
    ("RUN --mount=type=bind,target=/x,sharing=shared true", "invalid cache sharing"),
    ("RUN --mount=type=bind,target=/x,bogus=1 true", "unexpected key 'bogus'"),
    ("RUN --mount=type=bind,target=/x,zzz true", "must be a key=value pair"),
    ("RUN --mount=from=$STAGE,target=/x true", "doesn't support variable expansion"),
    ("RUN --network=bridge true", "invalid network mode"),
    ("RUN --security=paranoid true", "is not valid"),
    ("RUN --mount true", "missing a value on flag: --mount"),
    ("RUN --privileged true", "unknown flag: --privileged"),
])
def test_run_flag_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message) as e:
        parse_dockerfile("FROM a\n" + line + "\n", "ctx/Dockerfile")
    assert (e.value.path, e.value.line) == ("ctx/Dockerfile", 2)
    assert str(e.value).startswith("ctx/Dockerfile:2: ")


def test_mount_with_variables_is_checked_later() -> None:
    run = one("RUN --mount=type=$T,target=/x true")
    assert run.mount_specs == ("type=$T,target=/x",) and run.mounts == ()


@pytest.mark.parametrize("line, pairs", [
    ("LABEL a=b", [("a", "b", False)]),
    ('LABEL "com.example.vendor"="ACME Inc" version=1.0', [('"com.example.vendor"', '"ACME Inc"', False),
                                                            ("version", "1.0", False)]),
    ('LABEL description="multi \\\n  line"', [("description", '"multi   line"', False)]),
    ("LABEL maintainer foo@bar.com", [("maintainer", "foo@bar.com", True)]),
    ("LABEL key value with spaces", [("key", "value with spaces", True)]),
    ("LABEL a= b=", [("a", "", False), ("b", "", False)]),
])
def test_label(line: str, pairs: list) -> None:
    ins = one(line)
    assert isinstance(ins, Label)
    assert [(p.key, p.value, p.legacy) for p in ins.pairs] == pairs


@pytest.mark.parametrize("line, pairs", [
    ("ENV name value", [("name", "value", True)]),
    ("ENV name=value", [("name", "value", False)]),
    ("ENV name=value name2=value2", [("name", "value", False), ("name2", "value2", False)]),
    ('ENV name="value value1"', [("name", '"value value1"', False)]),
    ("ENV name=value\\ value2", [("name", "value\\ value2", False)]),
    ("ENV name=\"value'quote space'value2\"", [("name", "\"value'quote space'value2\"", False)]),
    ("ENV name='value\"double quote\"value2'", [("name", "'value\"double quote\"value2'", False)]),
    ('ENV name="a\\"b"', [("name", '"a\\"b"', False)]),
    ("ENV name='a\\'b'", [("name", "'a\\'b'", False)]),
    ("ENV SCUBA 1 DUBA 3", [("SCUBA", "1 DUBA 3", True)]),
    ('ENV SCUBA "1 DUBA 3"', [("SCUBA", '"1 DUBA 3"', True)]),
])
def test_env(line: str, pairs: list) -> None:
    ins = one(line)
    assert isinstance(ins, Env)
    assert [(p.key, p.value, p.legacy) for p in ins.pairs] == pairs


@pytest.mark.parametrize("line, message", [
    ("ENV", "ENV requires at least one argument"),
    ("ENV onlykey", "ENV must have two arguments"),
    ("ENV a=1 b", "can't find = in 'b'"),
    ("ENV =x", "ENV names can not be blank"),
    ("LABEL", "LABEL requires at least one argument"),
    ("ENV --x=1 a=b", "unknown flag: --x"),
])
def test_env_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        body(line)


def test_maintainer_user_workdir_stopsignal_take_the_whole_text() -> None:
    m, u, w, s = body("MAINTAINER Jane Doe <jane@example.com>\nUSER app:staff\nWORKDIR /my app\n"
                      "STOPSIGNAL SIGTERM\n")
    assert isinstance(m, Maintainer) and m.maintainer == "Jane Doe <jane@example.com>"
    assert isinstance(u, User) and u.user == "app:staff"
    assert isinstance(w, Workdir) and w.path == "/my app"
    assert isinstance(s, StopSignal) and s.signal == "SIGTERM"


@pytest.mark.parametrize("line", ["USER", "WORKDIR", "MAINTAINER", "STOPSIGNAL"])
def test_exactly_one_argument(line: str) -> None:
    with pytest.raises(DockerfileError, match="requires exactly one argument"):
        body(line)


def test_expose_and_volume() -> None:
    e, v1, v2, v3 = body('EXPOSE 9000 5000/udp 6000\nVOLUME ["/a", "/b c"]\nVOLUME /x /y\nVOLUME ["/test"]\n')
    assert isinstance(e, Expose) and e.ports == ("5000/udp", "6000", "9000")  # sorted, as Docker does
    assert isinstance(v1, Volume) and v1.paths == ("/a", "/b c")
    assert v2.paths == ("/x", "/y") and v3.paths == ("/test",)
    with pytest.raises(DockerfileError, match="VOLUME specified can not be an empty string"):
        body('VOLUME [" "]')
    with pytest.raises(DockerfileError, match="EXPOSE requires at least one argument"):
        body("EXPOSE")


@pytest.mark.parametrize("line, decls", [
    ("ARG name", [ArgDecl("name")]),
    ("ARG name=value", [ArgDecl("name", "value")]),
    ("ARG a b=2 c= d=\"x y\"", [ArgDecl("a"), ArgDecl("b", "2"), ArgDecl("c", ""), ArgDecl("d", '"x y"')]),
    ("ARG v=${OTHER:-x}", [ArgDecl("v", "${OTHER:-x}")]),
])
def test_arg(line: str, decls: list) -> None:
    ins = one(line)
    assert isinstance(ins, Arg) and list(ins.args) == decls


def test_arg_errors() -> None:
    with pytest.raises(DockerfileError, match="ARG requires at least one argument"):
        body("ARG")
    with pytest.raises(DockerfileError, match="ARG names can not be blank"):
        body("ARG =x")


def test_copy_flags() -> None:
    ins = one("COPY --from=build --chown=app:app --chmod=0755 --link --parents --exclude=*.md --exclude=tmp "
              "src/ ./x/ /app/")
    assert ins == Copy(sources=("src/", "./x/"), dest="/app/", from_="build", chown="app:app", chmod="0755",
                       link=True, parents=True, excludes=("*.md", "tmp"), original=ins.original,
                       location=ins.location)


def test_copy_json_form_keeps_spaces() -> None:
    ins = one('COPY ["my file", "dir with space/"]')
    assert ins.sources == ("my file",) and ins.dest == "dir with space/"


def test_add_flags() -> None:
    ins = one("ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --link=false "
              "https://example.com/a.tgz /x")
    assert isinstance(ins, Add)
    assert (ins.checksum, ins.keep_git_dir, ins.unpack, ins.link) == ("sha256:abc", True, False, False)
    plain = one("ADD a b")
    assert (plain.keep_git_dir, plain.unpack, plain.checksum) == (None, None, None)


@pytest.mark.parametrize("line, message", [
    ("COPY onlyone", "requires at least two arguments"),
    ("ADD x", "requires at least two arguments"),
    ("COPY --form=x a b", "unknown flag: --form"),
    ("COPY --from a b", "missing a value on flag: --from"),
    ("COPY --from=a --from=b a b", "duplicate flag specified: --from"),
    ("COPY --link=maybe a b", "expecting boolean value"),
    ("COPY --link= a b", "missing a value on flag: --link"),
    ("COPY --checksum=x a b", "unknown flag: --checksum"),
    ("ADD --parents a b", "unknown flag: --parents"),
    ("COPY a <<EOF\nx\nEOF", "cannot accept a heredoc as a destination"),
])
def test_copy_add_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        body(line)


def test_flag_terminator_and_quotes() -> None:
    ins = one('COPY --chown="my user" -- --weird-name /dst/')
    assert ins.chown == "my user" and ins.sources == ("--weird-name",)


def test_healthcheck() -> None:
    none, shell, exec_ = body("HEALTHCHECK NONE\n"
                              "HEALTHCHECK --interval=5s --timeout=3s --retries=3 --start-period=1m30s "
                              "--start-interval=500ms \\\n  CMD /app/check.sh --quiet\n"
                              'HEALTHCHECK CMD ["curl", "-f", "http://localhost/"]\n')
    assert isinstance(none, Healthcheck) and none.health == HealthConfig(test=("NONE",))
    assert shell.health == HealthConfig(test=("CMD-SHELL", "/app/check.sh --quiet"), interval=5_000_000_000,
                                        timeout=3_000_000_000, start_period=90_000_000_000,
                                        start_interval=500_000_000, retries=3)
    assert exec_.health.test == ("CMD", "curl", "-f", "http://localhost/")


@pytest.mark.parametrize("line, message", [
    ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
    ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
    ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
    ("HEALTHCHECK CONNECT TCP 7000", "Unknown type"),
    ("HEALTHCHECK --interval=5 CMD x", "missing unit"),
    ("HEALTHCHECK --interval=1us CMD x", "cannot be less than 1ms"),
    ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative"),
    ("HEALTHCHECK --retries=x CMD x", "invalid syntax"),
    ("HEALTHCHECK --bogus=1 CMD x", "unknown flag: --bogus"),
])
def test_healthcheck_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        body(line)


def test_healthcheck_zero_durations_mean_default() -> None:
    hc = one("HEALTHCHECK --start-period=0s --interval=0 --retries=0 CMD foo")
    assert hc.health == HealthConfig(test=("CMD-SHELL", "foo"))


def test_onbuild() -> None:
    a, b, c = body('ONBUILD RUN ["echo", "test"]\nonbuild  COPY --chown=1 . /app\nONBUILD ADD x /y\n')
    assert isinstance(a, Onbuild) and a.expression == 'RUN ["echo", "test"]'
    assert isinstance(a.trigger, Run) and a.trigger.command == ("echo", "test")
    assert b.expression == "COPY --chown=1 . /app" and b.trigger.chown == "1"
    assert isinstance(c.trigger, Add)


@pytest.mark.parametrize("line, message", [
    ("ONBUILD", "ONBUILD requires at least one argument"),
    ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD"),
    ("ONBUILD FROM alpine", "FROM isn't allowed as an ONBUILD trigger"),
    ("ONBUILD MAINTAINER me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
    ("ONBUILD FORM x", "unknown instruction: FORM"),
    ("ONBUILD COPY --bad=1 a b", "unknown flag: --bad"),
])
def test_onbuild_errors(line: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message):
        body(line)


def test_parse_instruction_reads_an_onbuild_trigger() -> None:
    ins = parse_instruction("RUN <<EOF\necho hi\nEOF", path="Dockerfile", line_number=3)
    assert isinstance(ins, Run) and ins.heredocs[0].content == "echo hi\n" and ins.line == 3


# -- errors ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, message", [
    ("FROM a\nFORM b\n", 2, "unknown instruction: FORM"),
    ("FROM a\n\nRUN ok\nCOPY a \\\n  \\\n\n", 4, "requires at least two arguments"),
    ("RUN x\n", 1, "no build stage in current context"),
    ("ARG A\nENV B=1\nFROM a\n", 2, "no build stage in current context"),
    ("ARG A\n", 1, "contains no stages"),
    ("# only a comment\n\n", None, "file with no instructions"),
    ("", None, "file with no instructions"),
    ("FROM a AS x\nFROM b AS X\n", 2, "duplicate stage name 'x'"),
    ("FROM a\nRUN <<EOF\nnever ends\n", 2, "unterminated heredoc"),
])
def test_errors_name_file_and_line(text: str, line: int | None, message: str) -> None:
    with pytest.raises(DockerfileError, match=message) as e:
        parse_dockerfile(text, "app/Dockerfile")
    assert e.value.path == "app/Dockerfile"
    if line is not None:
        assert e.value.line == line
        assert str(e.value).startswith(f"app/Dockerfile:{line}: ")


def test_error_is_an_invalid_argument() -> None:
    from dockyard.errors import InvalidArgument
    with pytest.raises(InvalidArgument):
        parse_dockerfile("NOPE\n")


# -- stages ----------------------------------------------------------------------------------------------

def test_stages_and_meta_args() -> None:
    df = parse_dockerfile("ARG A=1\nARG B\nFROM a AS one\nRUN x\nFROM b\nRUN y\nRUN z\n")
    assert [a.args for a in df.meta_args] == [(ArgDecl("A", "1"),), (ArgDecl("B"),)]
    assert [(s.index, s.name, s.display_name, len(s.instructions)) for s in df.stages] == [
        (0, "one", "one", 1), (1, None, "stage-1", 2)]


def test_reserved_stage_names_warn() -> None:
    df = parse_dockerfile("FROM a AS scratch\nFROM b AS context\n")
    assert [w.rule for w in df.warnings] == ["ReservedStageName", "ReservedStageName"]


def test_inline_source_helpers_types() -> None:
    ins = one("COPY <<A <<-B /dst/\none\nA\n\t\ttwo\n\tB\n")
    assert ins.inline == (InlineSource("A", "one\n", True), InlineSource("B", "two\n", True))
    assert ins.sources == ()


def test_keyvalue_is_exported() -> None:
    assert KeyValue("a", "b").legacy is False
