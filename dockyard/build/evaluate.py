"""Evaluating one instruction of a stage: Docker's variable expansion, then the stage's variables updated.

    vars = plan.stage_variables(stage_index, base_env=image_config_env)
    for ins in stage.instructions:
        step = evaluate(ins, vars, escape=dockerfile.escape)
        ...  # step.instruction has its paths/values expanded; step.used_args feeds the cache key

Docker expands ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and ARG defaults (FROM is
expanded by the planner with the global args; RUN --mount values too, here). RUN, CMD, ENTRYPOINT, SHELL,
HEALTHCHECK, MAINTAINER and ONBUILD are left alone: the shell (or the later build) does their expansion.
All words of one instruction see the variables as they were before it (`ENV a=1 b=$a` reads the old `a`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from dockyard.build.arguments import KeyValue
from dockyard.build.config_values import check_stop_signal, exposed_ports
from dockyard.build.errors import DockerfileError
from dockyard.build.instructions import (
    Add,
    Arg,
    ArgDecl,
    Copy,
    Env,
    Expose,
    From,
    InlineSource,
    Instruction,
    Label,
    Run,
    StopSignal,
    User,
    Volume,
    Workdir,
)
from dockyard.build.mounts import parse_mount
from dockyard.build.shell_lex import Lexer
from dockyard.build.variables import StageVariables

# Heredoc bodies are expanded with `\` as escape and quotes as plain text, whatever the file's escape is.
_HEREDOC_LEXER = Lexer("\\", skip_quotes=True)


@dataclass(frozen=True)
class Step:
    instruction: Instruction  # the same instruction type, its values expanded
    used_args: Mapping[str, str] = field(default_factory=dict)  # ARG name -> value this step depends on
    undefined: frozenset[str] = frozenset()  # variables it referenced that were not defined
    env: tuple[str, ...] = ()  # RUN only: the process environment, `K=V`


class _Expander:
    def __init__(self, lexer: Lexer, variables: StageVariables) -> None:
        self.lexer = lexer
        self.variables = variables
        self.view = variables.view
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def word(self, text: str) -> str:
        return self._record(self.lexer.expand(text, self.view)).result

    def optional(self, text: str | None) -> str | None:
        return None if text is None else self.word(text)

    def words(self, text: str) -> list[str]:
        return self._record(self.lexer.expand(text, self.view)).words

    def heredoc(self, text: str) -> str:
        return self._record(_HEREDOC_LEXER.expand(text, self.view)).result

    def _record(self, expansion):  # type: ignore[no-untyped-def]
        self.matched |= expansion.matched
        self.unmatched |= expansion.unmatched
        return expansion

    def step(self, instruction: Instruction, **extra: object) -> Step:
        used = extra.pop("used_args", None)
        if used is None:
            used = self.variables.used_args(self.matched)
        return Step(instruction, used, frozenset(self.unmatched), **extra)  # type: ignore[arg-type]


def evaluate(instruction: Instruction, variables: StageVariables, *, escape: str = "\\") -> Step:
    """Expand `instruction` with `variables`, apply its effect on them (ENV, ARG), and describe the step."""
    handler = _HANDLERS.get(type(instruction))
    if isinstance(instruction, From):
        raise DockerfileError("FROM starts a stage; it is resolved by the build plan",
                              instruction.location.path, instruction.line)
    ex = _Expander(Lexer(escape), variables)
    try:
        if handler is None:
            return ex.step(instruction)  # not expanded by Docker
        return handler(instruction, ex)
    except DockerfileError as e:
        raise e.located(instruction.location.path, instruction.line, instruction.location.end_line) from None


def _env(ins: Env, ex: _Expander) -> Step:
    pairs = tuple(KeyValue(ex.word(p.key), ex.word(p.value), p.legacy) for p in ins.pairs)
    step = ex.step(replace(ins, pairs=pairs))
    for pair in pairs:
        ex.variables.set_env(pair.key, pair.value)
    return step


def _label(ins: Label, ex: _Expander) -> Step:
    pairs = tuple(KeyValue(ex.word(p.key), ex.word(p.value), p.legacy) for p in ins.pairs)
    return ex.step(replace(ins, pairs=pairs))


def _inline(ins: Add | Copy, ex: _Expander) -> tuple[InlineSource, ...]:
    return tuple(replace(s, data=ex.heredoc(s.data)) if s.expand else s for s in ins.inline)


def _add(ins: Add, ex: _Expander) -> Step:
    return ex.step(replace(ins, chown=ex.optional(ins.chown), chmod=ex.optional(ins.chmod),
                           checksum=ex.optional(ins.checksum), sources=tuple(ex.word(s) for s in ins.sources),
                           dest=ex.word(ins.dest), inline=_inline(ins, ex)))


def _copy(ins: Copy, ex: _Expander) -> Step:
    return ex.step(replace(ins, chown=ex.optional(ins.chown), chmod=ex.optional(ins.chmod),
                           sources=tuple(ex.word(s) for s in ins.sources), dest=ex.word(ins.dest),
                           inline=_inline(ins, ex)))


def _workdir(ins: Workdir, ex: _Expander) -> Step:
    return ex.step(replace(ins, path=ex.word(ins.path)))


def _user(ins: User, ex: _Expander) -> Step:
    return ex.step(replace(ins, user=ex.word(ins.user)))


def _stopsignal(ins: StopSignal, ex: _Expander) -> Step:
    return ex.step(replace(ins, signal=check_stop_signal(ex.word(ins.signal))))


def _volume(ins: Volume, ex: _Expander) -> Step:
    paths = tuple(ex.word(p) for p in ins.paths)
    if any(p == "" for p in paths):
        raise DockerfileError("VOLUME specified can not be an empty string")
    return ex.step(replace(ins, paths=paths))


def _expose(ins: Expose, ex: _Expander) -> Step:
    words = [w for p in ins.ports for w in ex.words(p)]
    return ex.step(replace(ins, ports=tuple(exposed_ports(words))))


def _arg(ins: Arg, ex: _Expander) -> Step:
    decls = []
    used: dict[str, str] = {}
    for decl in ins.args:
        value, read = ex.variables.declare_arg(decl, ex.lexer)
        used.update(read)
        decls.append(ArgDecl(decl.name, value))
    return ex.step(replace(ins, args=tuple(decls)), used_args=used)


def _run(ins: Run, ex: _Expander) -> Step:
    mounts = tuple(parse_mount(spec, ex.word) for spec in ins.mount_specs)
    used = {**ex.variables.arg_values(), **ex.variables.used_args(ex.matched)}
    return ex.step(replace(ins, mounts=mounts), used_args=used,
                   env=tuple(ex.variables.run_environment()))


_HANDLERS: dict[type, Callable[..., Step]] = {
    Env: _env, Label: _label, Add: _add, Copy: _copy, Workdir: _workdir, User: _user, StopSignal: _stopsignal,
    Volume: _volume, Expose: _expose, Arg: _arg, Run: _run,
}
