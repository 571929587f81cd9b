"""How the CLI prints: Docker's human sizes and durations, tables, --format templates and JSON."""

from __future__ import annotations

import sys
import time

from dockyard.timeutil import human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:  # (importing collections.abc costs every command ~1 ms: it imports collections)
    from collections.abc import Iterable
    from typing import Any

_DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def human_size(size: float, precision: int = 3) -> str:
    """Docker's units.HumanSize: decimal units, three significant digits (4.26MB, 1.24kB, 0B)."""
    i = 0
    while size >= 1000 and i < len(_DECIMAL_UNITS) - 1:
        size /= 1000
        i += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[i]}"


def bytes_size(size: float) -> str:
    """Docker's units.BytesSize: binary units (used by stats)."""
    i = 0
    while size >= 1024 and i < len(_BINARY_UNITS) - 1:
        size /= 1024
        i += 1
    return f"{size:.4g}{_BINARY_UNITS[i]}"


def since(timestamp: float | None) -> str:
    if not timestamp:
        return "N/A"
    return human_duration(max(0.0, time.time() - timestamp)) + " ago"


def go_time(timestamp: float | None) -> str:
    """Go's time.Time String() as Docker prints CreatedAt: 2024-01-02 15:04:05 +0000 UTC."""
    if timestamp is None:
        return "0001-01-01 00:00:00 +0000 UTC"
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(timestamp))


def _template_source(fmt: str) -> str:
    # Docker lets users type \t and \n in a format string for a tab and a newline.
    return fmt.replace("\\t", "\t").replace("\\n", "\n")


def tabwrite(lines: list[str], minwidth: int = 10, padding: int = 3) -> list[str]:
    """Align tab-separated cells like Go's tabwriter as Docker configures it (minwidth 10, padding 3)."""
    rows = [line.split("\t") for line in lines]
    widths: dict[int, int] = {}
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths.get(i, minwidth), len(cell) + padding)
    return ["".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])) + row[-1] for row in rows]


def print_table(rows: Iterable[dict[str, Any]], columns: list[str], headers: dict[str, str], out=None) -> None:
    """The default table of a list command: the given fields, aligned, under their titles (no template)."""
    lines = ["\t".join(headers.get(c, c.upper()) for c in columns)]
    lines += ["\t".join(str(row[c]) for c in columns) for row in rows]
    (out or sys.stdout).write("".join(line.rstrip() + "\n" for line in tabwrite(lines)))


def print_formatted(rows: Iterable[Any], fmt: str, headers: dict[str, str], out=None) -> None:
    """Print rows through a --format template; 'table ...' adds a header row and aligns the columns.

    `headers` maps a field name (ID, Repository...) to its column title.
    """
    from dockyard.cli.gotemplate import Template

    out = out or sys.stdout
    if fmt == "json":
        fmt = "{{json .}}"
    is_table = fmt.startswith("table")
    source = _template_source(fmt[5:].lstrip() if is_table else fmt)
    template = Template(source)
    lines = [template.render(row) for row in rows]
    if is_table:
        header = Template(source).render(_HeaderRow(headers))
        table = tabwrite([header] + lines)
        out.write("\n".join(line.rstrip() for line in table) + "\n")
    else:
        for line in lines:
            out.write(line + "\n")


class _HeaderRow(dict):
    """Renders any field as its column title (ID -> 'IMAGE ID'), so a header comes from the same template."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__()
        self.headers = headers

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self.headers.get(key, key.upper())


def print_json(value: Any, out=None) -> None:
    """Docker's inspect output: indented with four spaces."""
    import json

    (out or sys.stdout).write(json.dumps(value, indent=4, ensure_ascii=False) + "\n")


def print_error(message: str) -> None:
    """A line on stderr, after whatever stdout holds (so the two interleave as they happened)."""
    sys.stdout.flush()
    sys.stderr.write(message + "\n")


def for_each(names: list[str], action) -> int:
    """Run `action` on each name; report failures the way docker does and return 1 if any failed."""
    from dockyard.errors import DockyardError

    status = 0
    for name in names:
        try:
            action(name)
        except DockyardError as e:
            print_error(f"Error response from daemon: {e}")
            status = 1
    return status
