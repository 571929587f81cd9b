"""The build plan: what each stage builds on, which stages it reads from, and which stages a target needs.

    plan = plan_build(dockerfile, target="app", build_args={"VERSION": "1.2"})
    for index in plan.order:                      # dependencies first; unused stages left out
        sp = plan.stages[index]
        sp.base                                   # BaseRef: an image reference, an earlier stage, or scratch
        plan.copy_source(index, copy_instruction) # SourceRef for COPY --from (stage, image or context)

Rules (BuildKit's): FROM lines expand with the global args; `FROM name` names an earlier stage when one has
that name (case-insensitively), else an image; `COPY --from` takes a stage name, a stage index or an image,
never a variable; `RUN --mount=from=` a stage name or an image. A stage may only read from stages defined
before it: a reference to itself is a circular dependency, to a later stage an error. ONBUILD triggers of a
base image can add dependencies once the image is known (`add_onbuild_triggers`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from dockyard.build.errors import DockerfileError
from dockyard.build.instructions import Copy, Instruction, Onbuild, Run
from dockyard.build.mounts import Mount, parse_mount
from dockyard.build.parser import Dockerfile, parse_instruction
from dockyard.build.shell_lex import Lexer
from dockyard.build.stages import Stage
from dockyard.build.variables import (
    BuildArgs,
    GlobalArgs,
    Platform,
    StageVariables,
    platform_args,
    resolve_global_args,
)
from dockyard.errors import InvalidArgument

SCRATCH = "scratch"
_INDEX = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class BaseRef:
    """What a stage starts from."""

    kind: Literal["image", "stage", "scratch"]
    image: str | None = None  # kind == "image": the reference, variables expanded
    stage: int | None = None  # kind == "stage": the stage index


@dataclass(frozen=True)
class SourceRef:
    """Where a COPY or a RUN mount reads files from."""

    kind: Literal["context", "stage", "image", "scratch"]
    stage: int | None = None
    image: str | None = None


@dataclass
class StagePlan:
    stage: Stage
    base: BaseRef
    platform: Platform | None  # FROM --platform, expanded and parsed
    used_args: dict[str, str]  # global args the FROM line read
    deps: dict[int, Instruction] = field(default_factory=dict)  # stage index -> first instruction needing it
    images: set[str] = field(default_factory=set)  # images read by COPY --from / RUN --mount from=
    triggers: list[Instruction] = field(default_factory=list)  # ONBUILD triggers of the base image, parsed

    @property
    def index(self) -> int:
        return self.stage.index


@dataclass
class BuildPlan:
    dockerfile: Dockerfile
    stages: list[StagePlan]
    target: int
    order: list[int]  # the stages to build, each after those it depends on
    global_args: GlobalArgs
    build_args: BuildArgs
    platform: Platform
    build_platform: Platform

    @property
    def lexer(self) -> Lexer:
        return Lexer(self.dockerfile.escape)

    def stage_variables(self, index: int, *, base_env: Iterable[str] = (),
                        parent: StageVariables | None = None) -> StageVariables:
        """Fresh variables for stage `index`: from its base image's Env, or derived from the parent stage's
        final variables when it is built FROM another stage."""
        if parent is not None:
            return parent.derive()
        return StageVariables(self.global_args, self.build_args, base_env)

    def copy_source(self, index: int, ins: Copy) -> SourceRef:
        if ins.from_ is None:
            return SourceRef("context")
        return _resolve_copy_from(self.stages, index, ins.from_, ins, self.dockerfile.escape)

    def mount_source(self, index: int, mount: Mount) -> SourceRef:
        if mount.from_ is None:
            return SourceRef("scratch" if mount.type in ("cache", "tmpfs") else "context")
        return _resolve_mount_from(self.stages, index, mount.from_, None)

    def add_onbuild_triggers(self, index: int, triggers: Iterable[str]) -> list[Instruction]:
        """Parse the base image's OnBuild list for stage `index`; they run right after its FROM.

        Returns the parsed triggers; stages they read from join `order`.
        """
        sp = self.stages[index]
        parsed = []
        for text in triggers:
            ins = parse_instruction(text, path=sp.stage.from_.location.path, line_number=sp.stage.from_.line)
            if isinstance(ins, Onbuild):
                raise DockerfileError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
                                      ins.location.path, ins.line)
            if ins.keyword in ("FROM", "MAINTAINER"):
                raise DockerfileError(f"{ins.keyword} isn't allowed as an ONBUILD trigger", ins.location.path,
                                      ins.line)
            _record_dependencies(self.stages, sp, ins, "\\")
            parsed.append(ins)
        sp.triggers.extend(parsed)
        self.order = _needed(self.stages, self.target)
        return parsed

    def parent_stage_triggers(self, index: int) -> list[str]:
        """ONBUILD expressions of the stage this one is built FROM (BuildKit fires them in the child stage,
        as it would for an image); pass them to `add_onbuild_triggers`. Empty for image bases."""
        base = self.stages[index].base
        if base.kind != "stage":
            return []
        assert base.stage is not None
        return [ins.expression for ins in self.stages[base.stage].stage.instructions if isinstance(ins, Onbuild)]

    def unused_build_args(self) -> list[str]:
        return self.build_args.unused()


def plan_build(dockerfile: Dockerfile, *, target: str | None = None,
               build_args: Mapping[str, str] | None = None, platform: Platform | None = None,
               build_platform: Platform | None = None) -> BuildPlan:
    build_platform = build_platform or Platform.host()
    platform = platform or build_platform
    target_index = _find_target(dockerfile, target)
    args = BuildArgs(dict(build_args or {}))
    lexer = Lexer(dockerfile.escape)
    defaults = platform_args(platform, build_platform, dockerfile.stages[target_index].name)
    global_args = resolve_global_args(dockerfile.meta_args, args, defaults, lexer)
    stages: list[StagePlan] = []
    for stage in dockerfile.stages:
        stages.append(_plan_stage(stage, stages, global_args, lexer))
    for sp in stages:
        for ins in sp.stage.instructions:
            _record_dependencies(stages, sp, ins, dockerfile.escape)
    return BuildPlan(dockerfile, stages, target_index, _needed(stages, target_index), global_args, args,
                     platform, build_platform)


def _find_target(dockerfile: Dockerfile, target: str | None) -> int:
    if not target:
        return len(dockerfile.stages) - 1
    for stage in dockerfile.stages:
        if stage.name is not None and stage.name == target.lower():
            return stage.index
    names = ", ".join(s.name for s in dockerfile.stages if s.name) or "none"
    raise DockerfileError(f"target stage {target!r} could not be found (stages: {names})")


def _plan_stage(stage: Stage, earlier: list[StagePlan], global_args: GlobalArgs, lexer: Lexer) -> StagePlan:
    ins = stage.from_
    where = (ins.location.path, ins.line)
    try:
        base_exp = lexer.expand(ins.image, global_args.values)
        platform_exp = lexer.expand(ins.platform, global_args.values) if ins.platform is not None else None
    except DockerfileError as e:
        raise DockerfileError(e.reason, *where) from None
    name = base_exp.result
    if name == "":
        raise DockerfileError(f"base name ({ins.image}) should not be blank", *where)
    used = {n: global_args.values[n] for n in sorted(base_exp.matched)}
    platform = None
    if platform_exp is not None:
        if platform_exp.result == "":
            raise DockerfileError(f"empty platform value from expression {ins.platform}", *where)
        try:
            platform = Platform.parse(platform_exp.result)
        except ValueError as e:
            raise DockerfileError(f"failed to parse platform {ins.platform}: {e}", *where) from None
        used.update({n: global_args.values[n] for n in sorted(platform_exp.matched)})
    return StagePlan(stage, _base(name, earlier, where), platform, used)


def _base(name: str, earlier: list[StagePlan], where: tuple[str, int]) -> BaseRef:
    for sp in earlier:
        if sp.stage.name is not None and sp.stage.name == name.lower():
            return BaseRef("stage", stage=sp.index)
    if name.lower() == SCRATCH:
        return BaseRef("scratch")
    from dockyard.image import reference
    try:
        reference.parse(name)
    except InvalidArgument as e:
        raise DockerfileError(f"invalid base image reference {name!r}: {e}", *where) from None
    return BaseRef("image", image=name)


def _record_dependencies(stages: list[StagePlan], sp: StagePlan, ins: Instruction, escape: str) -> None:
    if isinstance(ins, Onbuild):
        return  # only runs in a later build
    refs: list[SourceRef] = []
    if isinstance(ins, Copy) and ins.from_ is not None:
        refs.append(_resolve_copy_from(stages, sp.index, ins.from_, ins, escape))
    if isinstance(ins, Run):
        for spec in ins.mount_specs:
            mount = parse_mount(spec) if "$" not in spec else _mount_from_only(spec)
            if mount is not None and mount.from_ is not None:
                refs.append(_resolve_mount_from(stages, sp.index, mount.from_, ins))
    for ref in refs:
        if ref.kind == "stage":
            assert ref.stage is not None
            sp.deps.setdefault(ref.stage, ins)
        elif ref.kind == "image":
            assert ref.image is not None
            sp.images.add(ref.image)


def _mount_from_only(spec: str) -> Mount | None:
    """The from= of a spec whose other values use variables (from= itself never may)."""
    from dockyard.build.mounts import split_fields
    for item in split_fields(spec):
        key, eq, value = item.partition("=")
        if eq and key.lower() == "from":
            return Mount(from_=value)
    return None


def _resolve_copy_from(stages: list[StagePlan], index: int, ref: str, ins: Instruction | None,
                       escape: str = "\\") -> SourceRef:
    where = (ins.location.path, ins.line) if ins is not None else (None, None)
    try:
        literal = Lexer(escape).expand_word(ref, {}) == ref
    except DockerfileError:
        literal = False
    if not literal:
        raise DockerfileError("variable expansion is not supported for --from, define a new stage with FROM "
                              "using ARG from global scope as a workaround", *where)
    if _INDEX.fullmatch(ref):
        number = int(ref)
        if not 0 <= number < len(stages):
            raise DockerfileError(f"invalid stage index {number}", *where)
        return _stage_ref(stages, index, number, ref, where)
    return _by_name(stages, index, ref, where)


def _resolve_mount_from(stages: list[StagePlan], index: int, ref: str, ins: Instruction | None) -> SourceRef:
    where = (ins.location.path, ins.line) if ins is not None else (None, None)
    return _by_name(stages, index, ref, where)


def _by_name(stages: list[StagePlan], index: int, ref: str, where: tuple) -> SourceRef:  # type: ignore[type-arg]
    for sp in stages:
        if sp.stage.name is not None and sp.stage.name == ref.lower():
            return _stage_ref(stages, index, sp.index, ref, where)
    if ref.lower() == SCRATCH:
        return SourceRef("scratch")
    return SourceRef("image", image=ref)


def _stage_ref(stages: list[StagePlan], index: int, target: int, ref: str, where: tuple) -> SourceRef:  # type: ignore[type-arg]
    current = stages[index].stage.display_name if index < len(stages) else f"stage-{index}"
    if target == index:
        raise DockerfileError(f"circular dependency detected on stage: {current} (it reads from itself "
                              f"with --from={ref})", *where)
    if target > index:
        raise DockerfileError(f"cannot copy from stage {ref!r}, it needs to be defined before current stage "
                              f"{current!r}", *where)
    return SourceRef("stage", stage=target)


def _needed(stages: list[StagePlan], target: int) -> list[int]:
    """Stages the target needs (its base chain, what it copies or mounts from, transitively), in index order.

    References only ever point to earlier stages, so index order is a valid build order and a cycle would
    have been refused already; the walk still guards against one.
    """
    needed: set[int] = set()
    stack = [target]
    while stack:
        i = stack.pop()
        if i in needed:
            continue
        needed.add(i)
        sp = stages[i]
        if sp.base.kind == "stage":
            assert sp.base.stage is not None
            stack.append(sp.base.stage)
        stack.extend(sp.deps)
    return sorted(needed)
