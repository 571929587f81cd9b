"""The build's user-facing errors, all InvalidArgument: the input (Dockerfile, context, flags) is at fault."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dockyard.errors import InvalidArgument


class DockerfileError(InvalidArgument):
    """A malformed Dockerfile, or an instruction that cannot be evaluated.

    `path` and `line` (1-based, the instruction's first line) say where; `str()` reads
    `Dockerfile:12: unknown instruction: FORM`, the form editors and CI logs link to.
    """

    def __init__(self, reason: str, path: str | None = None, line: int | None = None,
                 end_line: int | None = None) -> None:
        self.reason = reason
        self.path = path
        self.line = line
        self.end_line = end_line if end_line is not None else line
        super().__init__(self._format())

    def _format(self) -> str:
        if self.path is None and self.line is None:
            return self.reason
        where = self.path or "Dockerfile"
        if self.line is not None:
            where += f":{self.line}"
        return f"{where}: {self.reason}"

    def located(self, path: str | None, line: int | None, end_line: int | None = None) -> DockerfileError:
        """This error with a location filled in (an inner helper raised it without one)."""
        if self.line is not None and self.path is not None:
            return self
        return DockerfileError(self.reason, self.path or path, self.line if self.line is not None else line,
                               self.end_line if self.line is not None else end_line)


class LexError(DockerfileError):
    """A word that cannot be expanded (unbalanced quote, bad `${...}`, `${x:?}` on an unset name...)."""


class BuildContextError(InvalidArgument):
    """A build context that cannot be used: unreadable, or a path that would leave it."""


class SourceNotFound(BuildContextError):
    """A COPY/ADD source that matches nothing in the context (or is excluded by .dockerignore)."""


@contextmanager
def at_instruction(path: str, line: int, end_line: int | None = None) -> Iterator[None]:
    """Report build-input errors raised inside the block at an instruction's file and line:

        with at_instruction(ins.location.path, ins.line):
            plan = plan_copy(tree, step.instruction.sources, dest)
    """
    try:
        yield
    except DockerfileError as e:
        raise e.located(path, line, end_line) from None
    except BuildContextError as e:
        raise DockerfileError(e.message, path, line, end_line) from e
