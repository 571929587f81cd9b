"""Runtime errors: dockyard's hierarchy, plus the two Docker maps to exit codes 127 and 126."""

from __future__ import annotations

from dockyard.errors import Conflict, DockyardError, Forbidden, HostError, InvalidArgument, NotFound

__all__ = ["CommandNotFound", "CommandNotInvokable", "Conflict", "DockyardError", "HostError", "InvalidArgument",
           "NotFound", "error_from_child"]


class CommandNotFound(NotFound):
    """The process's executable does not exist in the container (docker run exits 127)."""

    exit_code = 127


class CommandNotInvokable(Forbidden):
    """The executable exists but cannot be run: permission denied, a directory... (docker run exits 126)."""

    exit_code = 126


_KINDS: dict[str, type[DockyardError]] = {
    "notfound": CommandNotFound, "notinvokable": CommandNotInvokable, "invalid": InvalidArgument,
    "conflict": Conflict, "missing": NotFound, "host": HostError,
}


def kind_of(exc: BaseException) -> str:
    for kind, cls in _KINDS.items():
        if type(exc) is cls:
            return kind
    if isinstance(exc, InvalidArgument):
        return "invalid"
    if isinstance(exc, NotFound):
        return "missing"
    return "host"


def error_from_child(kind: str, message: str) -> DockyardError:
    return _KINDS.get(kind, HostError)(message)
