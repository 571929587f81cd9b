"""Reading JSON without importing the json package, for commands that must start fast.

`import json` costs a short-lived command ~4 ms, nearly all of it the `re` module that json's decoder and
encoder import for their patterns. The decoding itself is done by the C scanner in `_json` either way, so
`loads` here calls that scanner directly; elsewhere (and if `_json` is missing) it is json.loads.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_scanner = None
_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Context:
    """The attributes _json.make_scanner reads from json.JSONDecoder, with its defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)
    memo: dict = {}


def loads(text: str | bytes) -> Any:
    global _scanner
    if isinstance(text, bytes):
        text = text.decode()
    if _scanner is None:
        try:
            import _json

            _scanner = _json.make_scanner(_Context())
        except (ImportError, AttributeError):
            import json

            return json.loads(text)
    start = len(text) - len(text.lstrip())
    value, end = _scanner(text, start)
    if text[end:].strip():
        raise ValueError(f"extra data after JSON value at offset {end}")
    return value
