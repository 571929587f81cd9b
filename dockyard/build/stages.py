"""Build stages: the instructions between one FROM and the next."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dockyard.build.errors import DockerfileError
from dockyard.build.instructions import Arg, From, Instruction


@dataclass(frozen=True)
class Stage:
    index: int
    from_: From
    instructions: tuple[Instruction, ...]  # after the FROM

    @property
    def name(self) -> str | None:
        return self.from_.name

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"


def split_stages(instructions: Sequence[Instruction]) -> tuple[tuple[Arg, ...], tuple[Stage, ...]]:
    """(the ARGs before the first FROM, the stages). Only ARG may come before the first FROM."""
    meta: list[Arg] = []
    stages: list[Stage] = []
    current: From | None = None
    body: list[Instruction] = []
    seen: dict[str, From] = {}
    for ins in instructions:
        if isinstance(ins, From):
            if current is not None:
                stages.append(Stage(len(stages), current, tuple(body)))
            if ins.name is not None:
                if ins.name in seen:
                    raise DockerfileError(f"duplicate stage name {ins.name!r} (first defined on line "
                                          f"{seen[ins.name].line}); stage names must be unique",
                                          ins.location.path, ins.line)
                seen[ins.name] = ins
            current, body = ins, []
        elif current is None:
            if not isinstance(ins, Arg):
                raise DockerfileError("no build stage in current context", ins.location.path, ins.line)
            meta.append(ins)
        else:
            body.append(ins)
    if current is None:
        where = instructions[-1].location if instructions else None
        raise DockerfileError("dockerfile contains no stages to build", where.path if where else None,
                              where.line if where else None)
    stages.append(Stage(len(stages), current, tuple(body)))
    return tuple(meta), tuple(stages)
