"""Container logs in Docker's json-file format, with --log-opt max-size / max-file rotation.

Each line of output is one JSON object: {"log": "text\\n", "stream": "stdout", "time": "<RFC 3339 nano>"}.
A line longer than 16 KiB is cut into several records, as Docker does; the last piece of a stream without a
newline is written when the container stops.
"""

from __future__ import annotations

import json
import os
import time

MAX_LINE = 16 * 1024


def _now() -> str:
    t = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t // 1_000_000_000)) + f".{t % 1_000_000_000:09d}Z"


def parse_size(text: str) -> int:
    """Docker's RAMInBytes: 10m, 1g, 512k, 100 (bytes)."""
    units = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    value = text.strip().lower()
    if value.endswith("b") and len(value) > 1 and value[-2] in units:
        value = value[:-1]
    number, unit = (value[:-1], value[-1]) if value and value[-1] in units else (value, "b")
    return int(float(number) * units[unit])


class JsonLogWriter:
    def __init__(self, path: str, max_size: int | None = None, max_files: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.pending: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self.file = open(path, "ab")
        self.size = self.file.tell()

    def write(self, stream: str, data: bytes) -> None:
        buffered = self.pending[stream] + data
        lines = buffered.split(b"\n")
        self.pending[stream] = lines.pop()
        for line in lines:
            self._record(stream, line + b"\n")
        while len(self.pending[stream]) >= MAX_LINE:
            self._record(stream, self.pending[stream][:MAX_LINE])
            self.pending[stream] = self.pending[stream][MAX_LINE:]

    def flush_partial(self) -> None:
        for stream, rest in self.pending.items():
            if rest:
                self._record(stream, rest)
                self.pending[stream] = b""
        self.file.flush()

    def _record(self, stream: str, text: bytes) -> None:
        record = json.dumps({"log": text.decode("utf-8", "replace"), "stream": stream, "time": _now()},
                            ensure_ascii=False).encode() + b"\n"
        if self.max_size is not None and self.size and self.size + len(record) > self.max_size:
            self._rotate()
        self.file.write(record)
        self.file.flush()
        self.size += len(record)

    def _rotate(self) -> None:
        """log.N-1 -> log.N, ..., log -> log.1; with max-file 1 the log just starts again."""
        self.file.close()
        for n in range(self.max_files - 1, 0, -1):
            source = self.path if n == 1 else f"{self.path}.{n - 1}"
            if os.path.exists(source):
                os.replace(source, f"{self.path}.{n}")
        self.file = open(self.path, "wb")
        self.size = 0

    def close(self) -> None:
        self.flush_partial()
        self.file.close()


def log_files(path: str) -> list[str]:
    """The log and its rotated predecessors, oldest first."""
    rotated = []
    n = 1
    while os.path.exists(f"{path}.{n}"):
        rotated.append(f"{path}.{n}")
        n += 1
    return list(reversed(rotated)) + ([path] if os.path.exists(path) else [])
