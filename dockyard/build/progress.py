"""What a build prints: the legacy builder's step lines, with BuildKit's CACHED marker.

    Step 5/13 : RUN mkdir -p /app/bin
     ---> Running in build-3f2a1b9c0d4e5f6a
    <the command's output, streamed>
     ---> 9c1e2d3f4a5b (layer, 1.2 kB, 0.05s)
    Step 6/13 : COPY data/ /app/data/
     ---> CACHED 4b5c6d7e8f90
    ...
    Successfully built 0123456789ab
    Successfully tagged example:1

`Successfully built <12 hex>` is the line docker-py looks for in a build stream. `--progress=tty` adds the
time of every step; `-q` prints only the image id (and the failing step's output when a step fails).
"""

from __future__ import annotations

import time
from typing import BinaryIO

TAIL = 8192


def human_size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.3g} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1000
    return f"{size:.3g} GB"


class Progress:
    def __init__(self, out: BinaryIO, mode: str = "plain") -> None:
        self.out = out
        self.quiet = mode == "quiet"
        self.timed = mode == "tty"
        self.tail = bytearray()  # the last output of the running step, for errors in quiet mode
        self._started = time.monotonic()

    def _line(self, text: str) -> None:
        if not self.quiet:
            self.out.write(text.encode("utf-8", "surrogateescape") + b"\n")
            self.out.flush()

    def step(self, number: int, total: int, text: str) -> None:
        self._started = time.monotonic()
        self.tail.clear()
        self._line(f"Step {number}/{total} : {text}")

    def _took(self) -> str:
        return f", {time.monotonic() - self._started:.2f}s" if self.timed else ""

    def cached(self, layer: str | None) -> None:
        self._line(f" ---> CACHED {layer[7:19] if layer else '(no layer)'}")

    def running(self, name: str) -> None:
        self._line(f" ---> Running in {name}")

    def output(self, data: bytes) -> None:
        self.tail += data
        del self.tail[:-TAIL]
        if not self.quiet:
            self.out.write(data)
            self.out.flush()

    def made(self, layer: str | None, size: int) -> None:
        if layer is None:
            self._line(f" ---> (no changes, no layer{self._took()})")
        else:
            self._line(f" ---> {layer[7:19]} (layer, {human_size(size)}{self._took()})")

    def note(self, text: str) -> None:
        self._line(f" ---> {text}")

    def text(self) -> _Text:
        """A text stream onto the output (for a pull's progress lines)."""
        return _Text(self.out)

    def warn(self, text: str) -> None:
        self._line(f"[Warning] {text}")

    def result(self, image_id: str, tags: list[str]) -> None:
        if self.quiet:
            self.out.write(f"{image_id}\n".encode())
            self.out.flush()
            return
        self._line(f"Successfully built {image_id[7:19]}")
        for tag in tags:
            self._line(f"Successfully tagged {tag}")


class _Text:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def write(self, text: str) -> int:
        self.out.write(text.encode("utf-8", "surrogateescape"))
        return len(text)

    def flush(self) -> None:
        self.out.flush()

    def isatty(self) -> bool:
        return False
