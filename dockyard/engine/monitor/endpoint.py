"""Where a root's monitor is found: its lock (held for as long as it lives) and its socket."""

from __future__ import annotations

import fcntl
import os

SUN_PATH_MAX = 107  # bytes in a unix socket address, the NUL included


def socket_path(run_root: str) -> str:
    """<run_root>/monitor.sock, or a short stand-in under /run when that is too long for a socket address."""
    path = os.path.join(run_root, "monitor.sock")
    if len(path.encode()) < SUN_PATH_MAX:
        return path
    import hashlib

    return f"/run/dockyard-monitor-{hashlib.sha256(run_root.encode()).hexdigest()[:16]}.sock"


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
