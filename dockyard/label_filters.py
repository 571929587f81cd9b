"""Docker's label filters, as every list and prune command takes them: `label=KEY` or `label=KEY=VALUE` must
hold, `label!=KEY` or `label!=KEY=VALUE` must not."""

from __future__ import annotations

from collections.abc import Iterable


def label_holds(labels: dict[str, str], condition: str) -> bool:
    """`KEY` holds when the label is there (any value); `KEY=VALUE` when it has that value."""
    key, eq, value = condition.partition("=")
    return key in labels and (not eq or labels[key] == value)


def labels_match(labels: dict[str, str], wanted: Iterable[str] = (), unwanted: Iterable[str] = ()) -> bool:
    """Every `wanted` condition holds and no `unwanted` one does."""
    return all(label_holds(labels, c) for c in wanted) and not any(label_holds(labels, c) for c in unwanted)
