"""Whether a monitor serves a root: it holds <run_root>/monitor.lock (exclusively) for as long as it lives."""

from __future__ import annotations

import fcntl
import os


def monitor_alive(run_root: str) -> bool:
    """Whether a monitor holds this root's lock (it holds it for as long as it lives)."""
    path = os.path.join(run_root, "monitor.lock")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
