"""Stages: bases, --target, COPY --from and RUN --mount from=, which stages a build needs."""

from __future__ import annotations

import pytest

from dockyard.build.errors import DockerfileError
from dockyard.build.instructions import Copy, Run
from dockyard.build.parser import parse_dockerfile
from dockyard.build.plan import BaseRef, SourceRef, plan_build
from dockyard.build.variables import Platform

AMD64 = Platform("linux", "amd64")


def plan(text: str, **kw):
    kw.setdefault("platform", AMD64)
    kw.setdefault("build_platform", AMD64)
    return plan_build(parse_dockerfile(text), **kw)


MULTI = """\
FROM golang:1.22 AS build
RUN go build -o /app
FROM alpine AS test
RUN go test
FROM build AS lint
RUN golangci-lint run
FROM scratch
COPY --from=build /app /app
"""


def test_default_target_is_the_last_stage_and_unused_stages_are_skipped() -> None:
    p = plan(MULTI)
    assert p.target == 3 and p.order == [0, 3]
    assert [sp.base for sp in p.stages] == [BaseRef("image", image="golang:1.22"),
                                            BaseRef("image", image="alpine"), BaseRef("stage", stage=0),
                                            BaseRef("scratch")]
    assert list(p.stages[3].deps) == [0]


@pytest.mark.parametrize("target, order", [("build", [0]), ("test", [1]), ("LINT", [0, 2])])
def test_target(target: str, order: list[int]) -> None:
    assert plan(MULTI, target=target).order == order


def test_unknown_target() -> None:
    with pytest.raises(DockerfileError, match="target stage 'nope' could not be found"):
        plan(MULTI, target="nope")


def test_copy_from_forms() -> None:
    p = plan("FROM a AS Builder\nFROM b\nCOPY --from=builder /x /x\nCOPY --from=0 /y /y\n"
             "COPY --from=nginx:latest /etc/nginx/nginx.conf /n\nCOPY --from=scratch / /\n")
    copies = [i for i in p.stages[1].stage.instructions if isinstance(i, Copy)]
    refs = [p.copy_source(1, c) for c in copies]
    assert refs == [SourceRef("stage", stage=0), SourceRef("stage", stage=0),
                    SourceRef("image", image="nginx:latest"), SourceRef("scratch")]
    assert p.stages[1].images == {"nginx:latest"}
    assert p.copy_source(1, Copy(sources=("a",), dest="b", original="", location=copies[0].location)) == \
        SourceRef("context")


@pytest.mark.parametrize("text, message, line", [
    ("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\n", "cannot copy from stage 'two'", 2),
    ("FROM a AS one\nCOPY --from=1 /x /x\nFROM b\n", "cannot copy from stage '1'", 2),
    ("FROM a AS one\nCOPY --from=one /x /x\n", "circular dependency detected on stage: one", 2),
    ("FROM a\nCOPY --from=0 /x /x\n", "circular dependency", 2),
    ("FROM a\nFROM b\nCOPY --from=5 /x /x\n", "invalid stage index 5", 3),
    ("FROM a\nFROM b\nCOPY --from=-1 /x /x\n", "invalid stage index -1", 3),
    ("ARG S=a\nFROM a\nFROM b\nCOPY --from=$S /x /x\n", "variable expansion is not supported for --from", 4),
    ("FROM a AS one\nRUN --mount=from=two,target=/x true\nFROM b AS two\n", "cannot copy from stage 'two'",
     2),
    ("FROM a AS one\nRUN --mount=from=one,target=/x true\n", "circular dependency", 2),
])
def test_reference_errors(text: str, message: str, line: int) -> None:
    with pytest.raises(DockerfileError, match=message) as e:
        plan(text)
    assert e.value.line == line


def test_errors_in_unused_stages_are_still_reported() -> None:
    with pytest.raises(DockerfileError, match="cannot copy from stage"):
        plan("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\nFROM c AS final\n", target="final")


def test_run_mount_dependencies() -> None:
    p = plan("FROM a AS deps\nRUN x\nFROM b AS unused\nFROM c\n"
             "RUN --mount=type=bind,from=deps,source=/out,target=/in --mount=type=cache,target=/c make\n"
             "RUN --mount=from=busybox,target=/bb true\n")
    assert p.order == [0, 2] and p.stages[2].images == {"busybox"}
    run = p.stages[2].stage.instructions[0]
    assert isinstance(run, Run)
    bind, cache = run.mounts
    assert p.mount_source(2, bind) == SourceRef("stage", stage=0)
    assert p.mount_source(2, cache) == SourceRef("scratch")


def test_from_resolution() -> None:
    p = plan("FROM node AS node\nFROM node\nFROM ubuntu\nFROM debian AS ubuntu\nFROM Node\nFROM SCRATCH\n")
    bases = [sp.base for sp in p.stages]
    assert bases[0] == BaseRef("image", image="node")  # its own name is not a stage yet
    assert bases[1] == BaseRef("stage", stage=0)
    assert bases[2] == BaseRef("image", image="ubuntu")  # a later stage's name: an image, as in Docker
    assert bases[4] == BaseRef("stage", stage=0)  # stage names are case-insensitive
    assert bases[5] == BaseRef("scratch")


def test_transitive_needs() -> None:
    p = plan("FROM a AS a\nFROM a AS b\nFROM x AS c\nCOPY --from=b / /\nFROM y AS d\nFROM c\n")
    assert p.order == [0, 1, 2, 4]


@pytest.mark.parametrize("text, message", [
    ("ARG B\nFROM $B\n", r"base name \(\$B\) should not be blank"),
    ("FROM Not/A/Valid:Ref:x\n", "invalid base image reference"),
    ("FROM --platform=$NOPE a\n", "empty platform value"),
    ("FROM --platform=linux a\n", "failed to parse platform"),
    ("FROM ${B:?must_be_set}\n", "B: must_be_set"),
])
def test_from_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError, match=message) as e:
        plan(text)
    assert e.value.line is not None


def test_from_platform() -> None:
    p = plan("ARG P=linux/arm64/v8\nFROM --platform=$P a\nFROM --platform=linux/arm/v7 b\n")
    assert p.stages[0].platform == Platform("linux", "arm64")
    assert p.stages[1].platform == Platform("linux", "arm", "v7")


def test_onbuild_triggers_add_dependencies() -> None:
    p = plan("FROM a AS assets\nFROM b AS unused\nFROM onbuild-image\nRUN x\n")
    assert p.order == [2]
    triggers = p.add_onbuild_triggers(2, ["COPY --from=assets /a /a", "RUN make"])
    assert [t.keyword for t in triggers] == ["COPY", "RUN"]
    assert p.order == [0, 2] and p.stages[2].triggers == triggers


@pytest.mark.parametrize("trigger, message", [
    ("ONBUILD RUN x", "Chaining ONBUILD"),
    ("FROM x", "FROM isn't allowed as an ONBUILD trigger"),
    ("COPY --from=later /a /a", "cannot copy from stage 'later'"),
    ("BOGUS", "unknown instruction"),
])
def test_bad_onbuild_triggers(trigger: str, message: str) -> None:
    p = plan("FROM base\nFROM x AS later\n", target=None)
    with pytest.raises(DockerfileError, match=message) as e:
        p.add_onbuild_triggers(0, [trigger])
    assert e.value.line == 1  # reported at the FROM that pulled them in


def test_platform_parse() -> None:
    assert str(Platform.parse("linux/amd64")) == "linux/amd64"
    assert Platform.parse("linux/x86_64") == Platform("linux", "amd64")
    assert Platform.parse("linux/arm") == Platform("linux", "arm", "v7")
    assert Platform.parse("Linux/ARM64/v8") == Platform("linux", "arm64")
    with pytest.raises(ValueError):
        Platform.parse("linux")
    assert Platform.host().os == "linux"


def test_onbuild_of_a_parent_stage_fires_in_the_child() -> None:
    p = plan("FROM a AS base\nONBUILD RUN echo child\nONBUILD COPY . /src\nFROM base\nRUN x\n")
    assert p.parent_stage_triggers(1) == ["RUN echo child", "COPY . /src"]
    assert p.parent_stage_triggers(0) == []
    assert [t.keyword for t in p.add_onbuild_triggers(1, p.parent_stage_triggers(1))] == ["RUN", "COPY"]
