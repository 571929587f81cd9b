"""The distribution spec's error codes, their HTTP statuses and the `{"errors": [...]}` body."""

from __future__ import annotations

import json
from typing import Any

from dockyard.errors import DockyardError

# code -> (HTTP status, default message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    # Not in the spec's table, but sent by distribution and understood by clients:
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "NOT_FOUND": (404, "not found"),
}


class RegistryError(DockyardError):
    """An error answered with the spec's JSON body. `status` overrides the code's usual HTTP status."""

    def __init__(self, code: str, message: str | None = None, detail: Any = None, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        default_status, default_message = CODES[code]
        super().__init__(message or default_message)
        self.code = code
        self.detail = detail
        self.http_status = status or default_status
        self.headers = headers or {}

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            entry["detail"] = self.detail
        return entry


def error_body(*errors: RegistryError) -> bytes:
    return json.dumps({"errors": [e.to_json() for e in errors]}).encode()
