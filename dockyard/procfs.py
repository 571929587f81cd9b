"""Facts about processes from /proc/<pid>/stat."""

from __future__ import annotations


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields after `comm` (which may hold spaces and parentheses), or None if there is no such process."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(b")") + 2:].split()


def start_time(pid: int) -> int | None:
    """Start time in clock ticks since boot: with the pid, it names one process even after pid reuse."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def state_letter(pid: int) -> str | None:
    fields = _stat_fields(pid)
    return fields[0].decode() if fields else None


def is_alive(pid: int) -> bool:
    """Running or sleeping: not gone, not a zombie waiting to be reaped."""
    return state_letter(pid) not in (None, "Z", "X")
