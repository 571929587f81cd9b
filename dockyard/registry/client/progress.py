"""Progress of a pull or push, shown the way Docker shows it.

Events are `message(text)` (a line of its own) and `layer(id, status, current, total)`. On a terminal every
layer has a line that is redrawn in place, with a bar while bytes move; elsewhere each status change is one
plain line and byte counts are not shown (as Docker does when its output is not a terminal). JsonProgress
turns the same events into Docker's JSON progress messages, for the Engine API.
"""

from __future__ import annotations

import sys
import threading
import time

from dockyard.cli.output import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Callable, TextIO


class Progress:
    """The interface, and the quiet implementation: shows nothing."""

    def message(self, text: str) -> None:
        pass

    def layer(self, layer_id: str, status: str, current: int | None = None, total: int | None = None) -> None:
        pass

    def close(self) -> None:
        pass


class PlainProgress(Progress):
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._last: dict[str, str] = {}

    def message(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def layer(self, layer_id: str, status: str, current: int | None = None, total: int | None = None) -> None:
        if current is not None or self._last.get(layer_id) == status:
            return
        self._last[layer_id] = status
        self.out.write(f"{layer_id}: {status}\n")
        self.out.flush()


def progress_bar(current: int, total: int, width: int = 50) -> str:
    if total <= 0:
        return f"{human_size(current)}"
    filled = min(width, int(width * current / total))
    arrow = ">" if filled < width else ""
    bar = "=" * max(filled - len(arrow), 0) + arrow + " " * (width - filled)
    return f"[{bar}] {human_size(current):>8}/{human_size(total)}"


class TerminalProgress(Progress):
    """One line per layer, redrawn in place with ANSI cursor movement (at most ~10 redraws a second)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._order: list[str] = []
        self._lines: dict[str, str] = {}
        self._drawn = 0
        self._last_draw = 0.0

    def message(self, text: str) -> None:
        self._redraw(force=True)
        self.out.write(text + "\n")
        self.out.flush()
        # Messages go above the layer block from now on: start a fresh block.
        self._order, self._lines, self._drawn = [], {}, 0

    def layer(self, layer_id: str, status: str, current: int | None = None, total: int | None = None) -> None:
        if layer_id not in self._lines:
            self._order.append(layer_id)
        text = f"{layer_id}: {status}"
        if current is not None and total is not None:
            text += " " + progress_bar(current, total)
        self._lines[layer_id] = text
        self._redraw(force=current is None)

    def _redraw(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_draw < 0.1:
            return
        self._last_draw = now
        parts = []
        if self._drawn:
            parts.append(f"\x1b[{self._drawn}A")
        for layer_id in self._order:
            parts.append("\x1b[2K" + self._lines[layer_id] + "\n")
        self._drawn = len(self._order)
        self.out.write("".join(parts))
        self.out.flush()

    def close(self) -> None:
        self._redraw(force=True)


class JsonProgress(Progress):
    """Docker's JSON progress messages (status, id, progressDetail, progress), handed to `emit`."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        self.emit = emit

    def message(self, text: str) -> None:
        self.emit({"status": text})

    def layer(self, layer_id: str, status: str, current: int | None = None, total: int | None = None) -> None:
        message: dict[str, Any] = {"status": status, "progressDetail": {}, "id": layer_id}
        if current is not None and total is not None:
            message["progressDetail"] = {"current": current, "total": total}
            message["progress"] = progress_bar(current, total)
        self.emit(message)


class LockedProgress(Progress):
    """Progress shared by transfer threads: one event at a time reaches the display."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self._lock = threading.Lock()

    def message(self, text: str) -> None:
        with self._lock:
            self.inner.message(text)

    def layer(self, layer_id: str, status: str, current: int | None = None, total: int | None = None) -> None:
        with self._lock:
            self.inner.layer(layer_id, status, current, total)

    def close(self) -> None:
        with self._lock:
            self.inner.close()


def for_terminal(out: TextIO = sys.stdout, quiet: bool = False) -> Progress:
    if quiet:
        return Progress()
    return TerminalProgress(out) if out.isatty() else PlainProgress(out)
