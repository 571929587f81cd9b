"""ARG/ENV scoping and evaluation, with the Dockerfile reference's examples as expectations."""

from __future__ import annotations

import pytest

from dockyard.build.errors import DockerfileError
from dockyard.build.evaluate import Step, evaluate
from dockyard.build.instructions import Add, Copy, Env, Expose, Run, StopSignal, User, Volume, Workdir
from dockyard.build.parser import parse_dockerfile
from dockyard.build.plan import BuildPlan, plan_build
from dockyard.build.variables import Platform, StageVariables

AMD64 = Platform("linux", "amd64")
ARM = Platform.parse("linux/arm/v7")


Evaluated = tuple[BuildPlan, dict[int, list[Step]], dict[int, StageVariables]]


def build(text: str, build_args: dict | None = None, target: str | None = None,
          base_env: list[str] | None = None, platform: Platform = AMD64) -> Evaluated:
    """Evaluate every needed stage the way the executor will: stage variables from the base image's Env
    (`base_env`) or derived from the parent stage."""
    df = parse_dockerfile(text)
    plan = plan_build(df, target=target, build_args=build_args, platform=platform, build_platform=AMD64)
    steps: dict[int, list[Step]] = {}
    finals: dict[int, StageVariables] = {}
    for index in plan.order:
        sp = plan.stages[index]
        if sp.base.kind == "stage":
            variables = plan.stage_variables(index, parent=finals[sp.base.stage])
        else:
            variables = plan.stage_variables(index, base_env=base_env or [])
        steps[index] = [evaluate(ins, variables, escape=df.escape) for ins in sp.stage.instructions]
        finals[index] = variables
    return plan, steps, finals


def last_steps(text: str, **kw) -> list[Step]:
    plan, steps, _ = build(text, **kw)
    return steps[plan.target]


def run_env(step: Step) -> dict[str, str]:
    return dict(item.split("=", 1) for item in step.env)


def test_arg_comes_into_effect_where_declared() -> None:
    # Reference, ARG "Scope": line 2 falls back, line 4 sees the build arg.
    steps = last_steps("FROM busybox\nUSER ${username:-some_user}\nARG username\nUSER $username\n",
                       build_args={"username": "what_user"})
    assert steps[0].instruction.user == "some_user"
    assert steps[2].instruction.user == "what_user"
    assert steps[2].used_args == {"username": "what_user"}


def test_env_overrides_arg() -> None:
    # Reference, "Using ARG variables": RUN sees v1.0.0, not the build arg v2.0.1.
    steps = last_steps("FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=v1.0.0\nRUN echo $CONT_IMG_VER\n",
                       build_args={"CONT_IMG_VER": "v2.0.1"})
    assert run_env(steps[2])["CONT_IMG_VER"] == "v1.0.0"


@pytest.mark.parametrize("build_args, expected", [({}, "v1.0.0"), ({"CONT_IMG_VER": "v2.0.1"}, "v2.0.1")])
def test_env_default_from_arg(build_args: dict, expected: str) -> None:
    text = "FROM ubuntu\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\nRUN echo $CONT_IMG_VER\n"
    _, steps, finals = build(text, build_args=build_args)
    assert finals[0].env["CONT_IMG_VER"] == expected
    assert steps[0][1].instruction.pairs[0].value == expected


def test_env_uses_values_from_before_the_instruction() -> None:
    # Reference, "Environment replacement": def is hello, ghi is bye.
    _, _, finals = build("FROM a\nENV abc=hello\nENV abc=bye def=$abc\nENV ghi=$abc\n")
    env = finals[0].env
    assert (env["abc"], env["def"], env["ghi"]) == ("bye", "hello", "bye")


def test_reference_replacement_example() -> None:
    steps = last_steps("FROM busybox\nENV FOO=/bar\nWORKDIR ${FOO}\nADD . $FOO\nCOPY \\$FOO /quux\n")
    workdir, add, copy = steps[1:]
    assert isinstance(workdir.instruction, Workdir) and workdir.instruction.path == "/bar"
    assert isinstance(add.instruction, Add) and add.instruction.dest == "/bar"
    assert isinstance(copy.instruction, Copy) and copy.instruction.sources == ("$FOO",)


def test_unset_variables_expand_to_nothing() -> None:
    # The reference's WORKDIR example prints /path/$DIRNAME, but Docker's builder has long substituted an
    # unset variable with the empty string (as its lexer tests show): /path/.
    steps = last_steps("FROM a\nENV DIRPATH=/path\nWORKDIR $DIRPATH/$DIRNAME\n")
    assert steps[1].instruction.path == "/path/" and steps[1].undefined == {"DIRNAME"}


def test_global_args_in_from() -> None:
    plan, _, _ = build("ARG  CODE_VERSION=latest\nFROM base:${CODE_VERSION}\nCMD  /code/run-app\n"
                       "FROM extras:${CODE_VERSION}\nCMD  /code/run-extras\n")
    assert [sp.base.image for sp in plan.stages] == ["base:latest", "extras:latest"]
    assert plan.stages[0].used_args == {"CODE_VERSION": "latest"}


def test_build_arg_overrides_global_default() -> None:
    plan, _, _ = build("ARG V=1\nARG IMG=app:$V\nFROM $IMG\n", build_args={"V": "2"})
    assert plan.stages[0].base.image == "app:2"


def test_global_arg_needs_redeclaring_in_a_stage() -> None:
    text = "ARG VERSION=latest\nFROM busybox:$VERSION\nWORKDIR /$VERSION\nARG VERSION\nWORKDIR /$VERSION\n"
    steps = last_steps(text)
    assert steps[0].instruction.path == "/"  # not visible before the ARG
    assert steps[2].instruction.path == "/latest"
    steps = last_steps(text, build_args={"VERSION": "1.2"})
    assert steps[2].instruction.path == "/1.2"


def test_stage_default_does_not_use_global_value() -> None:
    steps = last_steps("ARG V=global\nFROM a\nARG V=local\nWORKDIR /$V\n")
    assert steps[1].instruction.path == "/local"


def test_arg_defaults_chain_within_one_instruction() -> None:
    _, _, finals = build("FROM a\nARG A=1 B=${A}2\n")
    assert finals[0].args == {"A": "1", "B": "12"}


def test_args_are_inherited_by_child_stages_only() -> None:
    text = ("FROM alpine AS base\nARG X=1\nFROM base AS child\nRUN true\nFROM alpine AS other\nRUN true\n"
            "FROM scratch\nCOPY --from=child /a /a\nCOPY --from=other /b /b\n")
    _, steps, _ = build(text)
    assert steps[1][0].used_args == {"X": "1"}
    assert steps[2][0].used_args == {}


def test_arg_overrides_env_from_the_base_image() -> None:
    # BuildKit: an ARG declared in the stage wins over the base image's ENV of the same name.
    steps = last_steps("FROM parent\nARG HELLO\nRUN echo $HELLO\n", build_args={"HELLO": "arg"},
                       base_env=["HELLO=World", "PATH=/bin"])
    assert run_env(steps[1])["HELLO"] == "arg"
    steps = last_steps("FROM parent\nARG HELLO\nRUN echo $HELLO\n", base_env=["HELLO=World"])
    assert run_env(steps[1])["HELLO"] == "World"  # declared without a value: the ENV stays


def test_run_sees_args_and_records_them() -> None:
    # Reference, "Impact on build caching": ARG CONT_IMG_VER makes RUN echo hello depend on its value.
    steps = last_steps("FROM ubuntu\nARG CONT_IMG_VER\nRUN echo hello\n", build_args={"CONT_IMG_VER": "7"})
    assert steps[1].used_args == {"CONT_IMG_VER": "7"}
    assert run_env(steps[1])["CONT_IMG_VER"] == "7"


def test_declared_arg_without_value_counts_as_empty() -> None:
    steps = last_steps("FROM a\nARG NOVALUE\nRUN true\n")
    assert steps[1].used_args == {"NOVALUE": ""} and "NOVALUE" not in run_env(steps[1])


def test_proxy_args() -> None:
    args = {"HTTP_PROXY": "http://proxy:3128", "no_proxy": "localhost"}
    steps = last_steps("FROM a\nRUN true\nWORKDIR /$HTTP_PROXY\n", build_args=args)
    env = run_env(steps[0])
    assert env["HTTP_PROXY"] == "http://proxy:3128" and env["no_proxy"] == "localhost"
    assert steps[0].used_args == {}  # not in the cache key ...
    assert steps[1].instruction.path == "/"  # ... nor in expansion, until declared
    steps = last_steps("FROM a\nARG HTTP_PROXY\nRUN true\n", build_args=args)
    assert steps[1].used_args == {"HTTP_PROXY": "http://proxy:3128"}


def test_platform_args() -> None:
    text = ("FROM --platform=$BUILDPLATFORM golang AS build\n"
            "ARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT\nWORKDIR /$TARGETPLATFORM\nARG BUILDARCH\n"
            "WORKDIR /$TARGETOS/$TARGETARCH/$TARGETVARIANT/$BUILDARCH\n"
            "WORKDIR /${TARGETSTAGE:-none}\n")
    plan, steps, _ = build(text, platform=ARM, target="build")
    assert plan.stages[0].platform == AMD64 and plan.stages[0].used_args == {"BUILDPLATFORM": "linux/amd64"}
    assert [s.instruction.path for s in steps[0][1:] if isinstance(s.instruction, Workdir)] == [
        "/linux/arm/v7", "/linux/arm/v7/amd64", "/none"]


def test_platform_args_are_global_only() -> None:
    steps = last_steps("FROM a\nWORKDIR /x$TARGETARCH\n")
    assert steps[0].instruction.path == "/x"


def test_used_args_only_for_args() -> None:
    steps = last_steps("FROM a\nARG UID=1000\nENV HOME=/home/app\nCOPY --chown=$UID a $HOME/\n")
    assert steps[2].used_args == {"UID": "1000"}


def test_unused_build_args() -> None:
    plan, _, _ = build("ARG USED\nFROM a\nARG ALSO\n", build_args={"USED": "1", "ALSO": "2", "NOPE": "3",
                                                                      "HTTP_PROXY": "x"})
    assert plan.unused_build_args() == ["NOPE"]


def test_copy_heredoc_expansion() -> None:
    # Reference, "Here-Documents": the unquoted delimiter expands ${FOO}; a quoted one does not.
    steps = last_steps('FROM alpine\nARG FOO=bar\nCOPY <<-EOT /script.sh\n\techo "hello ${FOO}"\nEOT\n'
                       'COPY <<-"EOT" /script2.sh\n\techo "hello ${FOO}"\nEOT\n')
    assert steps[1].instruction.inline[0].data == 'echo "hello bar"\n'
    assert steps[1].used_args == {"FOO": "bar"}
    assert steps[2].instruction.inline[0].data == 'echo "hello ${FOO}"\n'


def test_run_mount_values_expand() -> None:
    steps = last_steps("FROM a\nARG CACHE=go\n"
                       "RUN --mount=type=cache,id=$CACHE,target=/root/.cache/$CACHE make\n")
    (mount,) = steps[1].instruction.mounts
    assert (mount.id, mount.target) == ("go", "/root/.cache/go")


def test_run_mount_with_bad_expanded_value() -> None:
    with pytest.raises(DockerfileError, match="unsupported mount type") as e:
        last_steps("FROM a\nARG T=nfs\nRUN --mount=type=$T,target=/x true\n")
    assert e.value.line == 3


def test_commands_are_not_expanded() -> None:
    steps = last_steps("FROM a\nENV X=1\nRUN echo $X\nCMD echo $X\nENTRYPOINT [\"$X\"]\nONBUILD RUN $X\n"
                       "HEALTHCHECK CMD $X\n")
    assert steps[1].instruction.command == ("echo $X",)
    assert steps[2].instruction.command == ("echo $X",)
    assert steps[3].instruction.command == ("$X",)
    assert steps[4].instruction.expression == "RUN $X"
    assert steps[5].instruction.health.test == ("CMD-SHELL", "$X")


def test_other_expanded_instructions() -> None:
    steps = last_steps("FROM a\nENV P=8080 S=SIGKILL V=/data N=app\nEXPOSE $P 53/udp\nSTOPSIGNAL $S\n"
                       "VOLUME $V /other\nVOLUME [\"$V/x\"]\nUSER ${N}:${N}\nLABEL $N.version=\"1 0\"\n")
    expose, stop, vol, vol2, user, label = (s.instruction for s in steps[1:])
    assert isinstance(expose, Expose) and expose.ports == ("8080/tcp", "53/udp")
    assert isinstance(stop, StopSignal) and stop.signal == "SIGKILL"
    assert isinstance(vol, Volume) and vol.paths == ("/data", "/other") and vol2.paths == ("/data/x",)
    assert isinstance(user, User) and user.user == "app:app"
    assert label.pairs[0].key == "app.version" and label.pairs[0].value == "1 0"


def test_expose_forms() -> None:
    steps = last_steps("FROM a\nEXPOSE 80 8000-8002/UDP 127.0.0.1:8080:80/tcp\n")
    # An ip:hostport: prefix is accepted and dropped; protocols are lower-cased; duplicates collapse.
    assert steps[0].instruction.ports == ("80/tcp", "8000/udp", "8001/udp", "8002/udp")


@pytest.mark.parametrize("line, message", [
    ("EXPOSE 70000", "invalid containerPort"),
    ("EXPOSE 80/http", "invalid proto"),
    ("EXPOSE 9-1", "invalid containerPort"),
    ("STOPSIGNAL SIGBOGUS", "invalid signal"),
    ("STOPSIGNAL 0", "invalid signal"),
    ("WORKDIR ${X:?must set X}", "X: must set X"),
    ("COPY 'unterminated /x", "unexpected end of statement"),
    ("ENV A=\"x", "unexpected end of statement"),
])
def test_evaluation_errors_have_lines(line: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message) as e:
        last_steps(f"FROM a\n\n{line}\n")
    assert e.value.line == 3 and str(e.value).startswith("Dockerfile:3: ")


@pytest.mark.parametrize("signal", ["SIGTERM", "term", "RTMIN+3", "9", "SIGRTMAX-1", "sigusr1"])
def test_stop_signals(signal: str) -> None:
    assert last_steps(f"FROM a\nSTOPSIGNAL {signal}\n")[0].instruction.signal == signal


def test_env_keys_expand_and_quotes_are_removed() -> None:
    _, _, finals = build("FROM a\nENV K=name\nENV $K=\"a b\" other='c d' esc=e\\ f\n")
    env = finals[0].env
    assert (env["name"], env["other"], env["esc"]) == ("a b", "c d", "e f")


def test_legacy_env_form_keeps_inner_spaces() -> None:
    _, _, finals = build("FROM a\nENV MSG hello   \"big   world\"\n")
    assert finals[0].env["MSG"] == "hello   big   world"


def test_path_is_always_set() -> None:
    _, _, finals = build("FROM scratch\n")
    assert finals[0].env["PATH"] == "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    _, _, finals = build("FROM a\n", base_env=["PATH=/opt/bin"])
    assert finals[0].env["PATH"] == "/opt/bin"


def test_env_instruction_records_expanded_pairs() -> None:
    steps = last_steps("FROM a\nARG V=3\nENV A=$V\n")
    assert isinstance(steps[1].instruction, Env) and steps[1].instruction.pairs[0].value == "3"
    assert steps[1].used_args == {"V": "3"}


def test_run_environment_order_and_content() -> None:
    steps = last_steps("FROM a\nENV A=1\nARG B=2\nRUN true\n", base_env=["PATH=/bin"])
    assert isinstance(steps[2].instruction, Run)
    assert steps[2].env == ("PATH=/bin", "A=1", "B=2")
