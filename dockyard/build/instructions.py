"""Typed Dockerfile instructions: one frozen dataclass per instruction, as parsed (before expansion).

Every instruction keeps `original` (its text as written, continuations joined, e.g. for history's
`created_by` and cache keys) and `location` (file and lines, for errors). Values that Docker expands
(`COPY` paths, `ENV` values...) are kept unexpanded here; `dockyard.build.evaluate` produces the expanded
copy of an instruction for a given set of variables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from dockyard.build.arguments import KeyValue
from dockyard.build.heredoc import Heredoc
from dockyard.build.mounts import Mount

__all__ = [
    "INSTRUCTION_TYPES",
    "Add",
    "Arg",
    "ArgDecl",
    "Cmd",
    "Copy",
    "Entrypoint",
    "Env",
    "Expose",
    "From",
    "HealthConfig",
    "Healthcheck",
    "Heredoc",
    "InlineSource",
    "Instruction",
    "KeyValue",
    "Label",
    "Location",
    "Maintainer",
    "Mount",
    "Onbuild",
    "Run",
    "Shell",
    "StopSignal",
    "User",
    "Volume",
    "Workdir",
]


@dataclass(frozen=True)
class Location:
    path: str
    line: int  # first line of the instruction, 1-based
    end_line: int  # last line, heredoc bodies included

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True, kw_only=True)
class Instruction:
    keyword: ClassVar[str] = ""
    original: str  # e.g. "COPY --chown=app src/ /app/" (continuations joined, trimmed)
    location: Location
    comments: tuple[str, ...] = ()  # the comment lines right above it

    @property
    def line(self) -> int:
        return self.location.line


@dataclass(frozen=True, kw_only=True)
class From(Instruction):
    keyword: ClassVar[str] = "FROM"
    image: str  # the base as written: an image reference, an earlier stage's name, or "scratch"
    name: str | None = None  # `AS name`, lower-cased
    platform: str | None = None  # --platform, unexpanded


@dataclass(frozen=True, kw_only=True)
class _CommandLine(Instruction):
    command: tuple[str, ...]  # exec form: the argv; shell form: one string for the shell
    shell_form: bool  # True: prefix the image's SHELL (default ["/bin/sh", "-c"])


@dataclass(frozen=True, kw_only=True)
class Run(_CommandLine):
    keyword: ClassVar[str] = "RUN"
    heredocs: tuple[Heredoc, ...] = ()
    mount_specs: tuple[str, ...] = ()  # the raw --mount values
    mounts: tuple[Mount, ...] = ()  # parsed; values with variables are only final after evaluation
    network: str = "default"  # default | none | host
    security: str = "sandbox"  # sandbox | insecure
    flags_used: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Cmd(_CommandLine):
    keyword: ClassVar[str] = "CMD"


@dataclass(frozen=True, kw_only=True)
class Entrypoint(_CommandLine):
    keyword: ClassVar[str] = "ENTRYPOINT"


@dataclass(frozen=True, kw_only=True)
class Shell(Instruction):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class Label(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True, kw_only=True)
class Maintainer(Instruction):
    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class Expose(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]  # as written; evaluation turns them into "80/tcp" forms


@dataclass(frozen=True, kw_only=True)
class Env(Instruction):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[KeyValue, ...]


@dataclass(frozen=True)
class InlineSource:
    """A COPY/ADD source given as a here-document: a file named `name` holding `data`."""

    name: str
    data: str  # tab-stripped already for `<<-`
    expand: bool  # variables in `data` are substituted (the delimiter was not quoted)


@dataclass(frozen=True, kw_only=True)
class _FileTransfer(Instruction):
    sources: tuple[str, ...]  # paths, wildcards, URLs (ADD)
    inline: tuple[InlineSource, ...] = ()
    dest: str
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    excludes: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Add(_FileTransfer):
    keyword: ClassVar[str] = "ADD"
    checksum: str | None = None
    keep_git_dir: bool | None = None
    unpack: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Copy(_FileTransfer):
    keyword: ClassVar[str] = "COPY"
    from_: str | None = None  # --from: a stage name, a stage index or an image
    parents: bool = False


@dataclass(frozen=True, kw_only=True)
class Volume(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class User(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True, kw_only=True)
class Workdir(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True)
class ArgDecl:
    name: str
    default: str | None = None  # None: declared without `=value`


@dataclass(frozen=True, kw_only=True)
class Arg(Instruction):
    keyword: ClassVar[str] = "ARG"
    args: tuple[ArgDecl, ...]


@dataclass(frozen=True, kw_only=True)
class Onbuild(Instruction):
    keyword: ClassVar[str] = "ONBUILD"
    expression: str  # what goes into the image's OnBuild list (heredoc bodies included)
    trigger: Instruction  # the wrapped instruction, parsed


@dataclass(frozen=True, kw_only=True)
class StopSignal(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True)
class HealthConfig:
    """Docker's Healthcheck config: durations in nanoseconds, 0 meaning "inherit/default"."""

    test: tuple[str, ...]  # ("NONE",) | ("CMD", argv...) | ("CMD-SHELL", command)
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class Healthcheck(Instruction):
    keyword: ClassVar[str] = "HEALTHCHECK"
    health: HealthConfig


INSTRUCTION_TYPES: dict[str, type[Instruction]] = {
    cls.keyword: cls for cls in (From, Run, Cmd, Entrypoint, Shell, Label, Maintainer, Expose, Env, Add, Copy,
                                 Volume, User, Workdir, Arg, Onbuild, StopSignal, Healthcheck)
}
