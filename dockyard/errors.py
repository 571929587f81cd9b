"""The one exception hierarchy of dockyard.

Every error a user can cause or meet is a DockyardError subclass; the CLI turns it into a message and an exit
code, the API server into an HTTP status and a `{"message": ...}` body. The mapping lives here and nowhere else.
"""

from __future__ import annotations


class DockyardError(Exception):
    """Base class: a message meant for the user."""

    http_status = 500
    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(DockyardError):
    """Bad input from the user: a malformed name, flag value, file or archive."""

    http_status = 400


class InvalidReference(InvalidArgument):
    """A name that breaks the image reference grammar."""


class CorruptContent(InvalidArgument):
    """Content that does not match its digest or size, or an archive that cannot be read."""


class UnsafeLayer(InvalidArgument):
    """A layer that tries to write outside its root, or carries a malformed whiteout."""


class NotFound(DockyardError):
    http_status = 404


class Conflict(DockyardError):
    """The request clashes with the current state (name taken, image in use, container running...)."""

    http_status = 409


class NotModified(DockyardError):
    """Nothing to do (start of a running container, stop of a stopped one)."""

    http_status = 304


class Forbidden(DockyardError):
    http_status = 403


class Unauthorized(DockyardError):
    http_status = 401


class HostError(DockyardError):
    """The host could not do what was asked (a mount failed, the disk is full...)."""
