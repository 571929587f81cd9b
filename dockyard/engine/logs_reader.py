"""Reading json-file logs back: tail, since/until, and following a log as it grows and rotates."""

from __future__ import annotations

import json
import os
import time
from collections import deque
from typing import Callable

from dockyard.engine.monitor.logs import log_files
from dockyard.timeutil import parse_rfc3339

POLL = 0.05


def _entries(path: str):
    with open(path, "rb") as f:
        for line in f:
            try:
                yield json.loads(line)
            except ValueError:
                continue  # a line being written right now, or a torn one after a crash


def _wanted(entry: dict, since: float | None, until: float | None) -> bool:
    if since is None and until is None:
        return True
    t = parse_rfc3339(entry.get("time")) or 0
    return (since is None or t >= since) and (until is None or t <= until)


def read_logs(path: str, emit: Callable[[dict], None], tail: int | None, since: float | None,
              until: float | None) -> tuple[int, int]:
    """Emit what is logged so far; returns (inode, offset) of the current log's end, for following."""
    files = log_files(path)
    selected = deque(maxlen=tail) if tail is not None else None
    for name in files:
        for entry in _entries(name):
            if _wanted(entry, since, until):
                if selected is not None:
                    selected.append(entry)
                else:
                    emit(entry)
    if selected is not None and tail != 0:
        for entry in selected:
            emit(entry)
    try:
        st = os.stat(path)
        return st.st_ino, st.st_size
    except FileNotFoundError:
        return 0, 0


def follow_logs(path: str, position: tuple[int, int], emit: Callable[[dict], None], running: Callable[[], bool],
                until: float | None, flush: Callable[[], object]) -> None:
    """Emit new entries until the container stops (and its last lines are read) or `until` passes."""
    inode, offset = position
    pending = b""
    idle_checks = 0
    while True:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and st.st_ino != inode:  # rotated: finish the old file, then start the new one
            inode, offset, pending = st.st_ino, 0, b""
        if st is not None and st.st_size > offset:
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read()
            offset += len(data)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if until is None or (parse_rfc3339(entry.get("time")) or 0) <= until:
                    emit(entry)
            flush()
            idle_checks = 0
            continue
        if until is not None and time.time() > until:
            return
        idle_checks += 1
        if idle_checks % 4 == 0 and not running():
            return
        time.sleep(POLL)
