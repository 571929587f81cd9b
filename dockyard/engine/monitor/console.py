"""Receiving a container's terminal: the runtime sends the pty master over a unix socket (runc's protocol)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from typing import Callable

from dockyard.errors import HostError


def with_terminal(start: Callable[[str], int]) -> tuple[int, int]:
    """Call start(console_socket_path) -> pid, and receive the pty master it sends; returns (pid, master).

    The socket lives in a fresh private directory under /run: a short path (socket addresses are limited to
    107 bytes, which a deep state root can exceed) that nobody else can reach.
    """
    directory = tempfile.mkdtemp(prefix="dockyard-tty-", dir="/run" if os.access("/run", os.W_OK) else None)
    path = os.path.join(directory, "console.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        listener.listen(1)
        pid = start(path)
        listener.settimeout(10)
        conn, _ = listener.accept()
        with conn:
            _, fds, _, _ = socket.recv_fds(conn, 1024, 4)
        if not fds:
            raise HostError("the runtime did not send the container's terminal")
        for extra in fds[1:]:
            os.close(extra)
        return pid, fds[0]
    finally:
        listener.close()
        shutil.rmtree(directory, ignore_errors=True)
